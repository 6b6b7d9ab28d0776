"""Catalog errors, each with a stable code and HTTP status."""

from __future__ import annotations

from typing import Any

from zhongtai.catalog.rules import Problem
from zhongtai.core.errors import Conflict, NotFound, ValidationFailed

# The import errors are the kit's, shared by every tabular import; named here for catalog callers.
from zhongtai.kit.tabular import ImportHasErrors, ImportTooLarge, ImportUnreadable  # noqa: F401


class InvalidFields(ValidationFailed):
    """One or more fields break a catalog rule. `data.errors` lists every problem as
    `{"field", "problem"}`; `data.field` names the first, so a form can mark it."""

    code = "invalid_fields"

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(
            problems[0].message,
            field=problems[0].field,
            errors=[{"field": p.field, "problem": p.message, "params": dict(p.values)} for p in problems],
        )
        self.problems = problems


class ProductNotFound(NotFound):
    code = "product_not_found"
    default_message = "No such product."


class LotNotFound(NotFound):
    code = "lot_not_found"
    default_message = "No such lot."


class DuplicateGtin(Conflict):
    code = "duplicate_gtin"

    def __init__(self, gtin: str, **data: Any) -> None:
        super().__init__(f"A product with GTIN {gtin} already exists.", field="gtin", gtin=gtin, **data)


class DuplicateLot(Conflict):
    code = "duplicate_lot"

    def __init__(self, lot_number: str) -> None:
        super().__init__(f"This product already has a lot {lot_number}.", field="lot_number", lot_number=lot_number)


class ProductArchived(Conflict):
    code = "product_archived"
    default_message = "This product is archived; unarchive it first."
