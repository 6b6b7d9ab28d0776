"""Refusals of lotteries."""

from __future__ import annotations

from zhongtai.core.errors import Conflict, NotFound, ValidationFailed


class SessionNotFound(NotFound):
    code = "lottery_session_not_found"
    default_message = "No such lottery session."


class EntryNotFound(NotFound):
    code = "lottery_entry_not_found"
    default_message = "No such lottery entry."


class WrongState(Conflict):
    code = "lottery_wrong_state"
    default_message = "The lottery session is not in a state that allows this."


class NotOpen(Conflict):
    code = "lottery_not_open"
    default_message = "The lottery session is not open for entries now."


class AlreadyEntered(Conflict):
    code = "lottery_already_entered"
    default_message = "You already entered this product in this session."


class NotOffered(ValidationFailed):
    code = "lottery_not_offered"
    default_message = "This store has no stock of this product in this session."
