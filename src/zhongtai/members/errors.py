"""Refusals of members."""

from __future__ import annotations

from zhongtai.core.errors import Conflict, PermissionDenied, ValidationFailed


class IdentityMismatch(ValidationFailed):
    code = "identity_mismatch"
    default_message = "The name and the ID number do not match the authority's record."


class AlreadyVerified(Conflict):
    code = "already_verified"
    default_message = "This account is already verified with another ID number."


class IdentityInUse(Conflict):
    code = "identity_in_use"
    default_message = "This ID number is already verified on another account."


class NotVerified(PermissionDenied):
    code = "not_verified"
    default_message = "Verify your real name first."


class UnderAge(PermissionDenied):
    code = "under_age"
    default_message = "You must be 18 or older to take part."
