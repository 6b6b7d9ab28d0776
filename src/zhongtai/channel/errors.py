"""Channel errors, each with a stable code and HTTP status."""

from __future__ import annotations

from zhongtai.catalog.errors import InvalidFields as CatalogInvalidFields
from zhongtai.core.errors import Conflict, NotFound, Unauthenticated


class InvalidFields(CatalogInvalidFields):
    """`data.errors` lists every problem as `{"field", "problem"}`; `data.field` names the first."""


class DealerNotFound(NotFound):
    code = "dealer_not_found"
    default_message = "No such dealer."


class StoreNotFound(NotFound):
    code = "store_not_found"
    default_message = "No such store."


class GuideNotFound(NotFound):
    code = "guide_not_found"
    default_message = "No such shopping guide."


class PartnerNotFound(NotFound):
    code = "partner_not_found"
    default_message = "No such partner account."


class DuplicateCode(Conflict):
    code = "duplicate_code"

    def __init__(self, kind: str, code: str) -> None:
        super().__init__(f"A {kind} with code {code} already exists.", field="code", kind=kind, value=code)


class DuplicatePhone(Conflict):
    code = "duplicate_phone"

    def __init__(self, kind: str) -> None:
        super().__init__(f"A {kind} with this phone number already exists.", field="phone", kind=kind)


class PartnerArchived(Conflict):
    code = "partner_archived"

    def __init__(self, kind: str) -> None:
        super().__init__(f"This {kind} is archived; unarchive it first.", kind=kind)


class PartnerSignInFailed(Unauthenticated):
    code = "partner_sign_in_failed"
    default_message = "Phone number or password is wrong, or the account is disabled."
