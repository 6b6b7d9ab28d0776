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


class MergeRefused(Conflict):
    code = "merge_refused"
    default_message = "These members cannot be merged automatically; review them instead of merging."


class CapReached(Conflict):
    code = "identifier_cap_reached"
    default_message = "This member already holds as many identifiers of this type as allowed."


class LinkContended(Conflict):
    code = "link_contended"
    default_message = "These members changed at the same time as this request; send it again."


class UnmergeRefused(Conflict):
    code = "unmerge_refused"
    default_message = "This merge cannot be undone now."


class ConsentMissing(PermissionDenied):
    code = "consent_missing"
    default_message = "The member has not consented to this use of their data."


class SuggestionClosed(Conflict):
    code = "duplicate_suggestion_closed"
    default_message = "This suggestion was already decided; reload the review queue."
