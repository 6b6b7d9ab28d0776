"""Pure catalog rules: GTIN check digits, lot numbers, packaging, prices. No I/O.

Every rule reports a `Problem`: the field, an English message template and its values, so that the
API shows the message and the console shows it translated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from stdnum import ean

# Product statuses (stored in `catalog_products.status`; other domains compare against these).
PRODUCT_ACTIVE = "active"
PRODUCT_ARCHIVED = "archived"
PRODUCT_STATUSES = (PRODUCT_ACTIVE, PRODUCT_ARCHIVED)

GTIN_LENGTHS = (8, 12, 13, 14)
LOT_NUMBER_MAX = 20
# GS1 "CSET 82": the characters allowed in alphanumeric element strings such as AI (10) lot numbers.
GS1_CSET82 = frozenset("!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
MAX_PRICE = Decimal("99999999.99")
MAX_IMAGES = 10
MAX_URL_LENGTH = 500
MAX_PACK_QUANTITY = 1_000_000
TEXT_LIMITS = {"name": 200, "specification": 200, "category": 100, "factory": 120, "line": 60}


@dataclass(frozen=True)
class Problem:
    field: str
    template: str
    values: Mapping[str, object] = dataclass_field(default_factory=dict)

    @property
    def message(self) -> str:
        return self.template.format(**self.values)


class RuleBroken(ValueError):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


# GTIN.


def gtin14(raw: str, *, field_name: str = "gtin") -> str:
    """A GTIN-8, -12, -13 or -14 checked by its check digit and returned as GTIN-14 (zero-padded).

    Spaces and hyphens are ignored. Raises `RuleBroken` naming the expected check digit when the
    last digit is wrong.
    """
    number = ean.compact(raw or "")
    if not number:
        raise RuleBroken(Problem(field_name, "Enter a GTIN."))
    if not number.isascii() or not number.isdigit():
        raise RuleBroken(Problem(field_name, "A GTIN has digits only; '{value}' has other characters.", {"value": raw}))
    if len(number) not in GTIN_LENGTHS:
        raise RuleBroken(
            Problem(field_name, "A GTIN has 8, 12, 13 or 14 digits; this one has {length}.", {"length": len(number)})
        )
    expected = ean.calc_check_digit(number[:-1])
    if number[-1] != expected:
        raise RuleBroken(
            Problem(
                field_name,
                "Wrong check digit in GTIN {gtin}: expected {expected}, got {given}.",
                {"gtin": number, "expected": expected, "given": number[-1]},
            )
        )
    if set(number) == {"0"}:
        raise RuleBroken(Problem(field_name, "A GTIN cannot be all zeros."))
    return number.zfill(14)


def display_gtin(gtin: str) -> str:
    """A stored GTIN-14 as people usually read it: GTIN-13 (EAN-13) when the first digit is the
    padding zero, else all fourteen digits."""
    return gtin[1:] if len(gtin) == 14 and gtin.startswith("0") else gtin


# Products.


@dataclass(frozen=True)
class ProductDraft:
    """Product fields as typed by a person or an integration, before the rules."""

    gtin: str
    name: str
    specification: str = ""
    category: str = ""
    image_urls: Sequence[str] = ()
    price: Decimal | None = None
    items_per_case: int | None = None
    cases_per_pallet: int | None = None


@dataclass(frozen=True)
class ProductFields:
    """Product fields that passed the rules, normalized for storage."""

    gtin: str
    name: str
    specification: str
    category: str
    image_urls: list[str]
    price_fen: int | None
    items_per_case: int | None
    cases_per_pallet: int | None


def _text(problems: list[Problem], name: str, value: str, *, required: bool = False) -> str:
    cleaned = " ".join((value or "").split())
    if required and not cleaned:
        problems.append(Problem(name, "This field is required."))
    elif len(cleaned) > TEXT_LIMITS[name]:
        problems.append(Problem(name, "At most {limit} characters.", {"limit": TEXT_LIMITS[name]}))
    return cleaned


def price_fen(price: Decimal) -> int:
    """Yuan to fen; raises `RuleBroken` for negative prices, more than two decimals or absurd sizes."""
    try:
        if not price.is_finite():
            raise InvalidOperation
        fen = price * 100
        if fen != fen.to_integral_value():
            raise RuleBroken(Problem("price", "A price has at most two decimals (fen)."))
    except InvalidOperation:
        raise RuleBroken(Problem("price", "Not a price: '{value}'.", {"value": str(price)})) from None
    if price < 0:
        raise RuleBroken(Problem("price", "A price cannot be negative."))
    if price > MAX_PRICE:
        raise RuleBroken(Problem("price", "A price is at most {limit}.", {"limit": str(MAX_PRICE)}))
    return int(fen)


def format_price(fen: int | None) -> str:
    return "" if fen is None else f"{fen // 100}.{fen % 100:02d}"


def _image_urls(problems: list[Problem], urls: Sequence[str]) -> list[str]:
    cleaned = [url.strip() for url in urls if url and url.strip()]
    if len(cleaned) > MAX_IMAGES:
        problems.append(Problem("image_urls", "At most {limit} images.", {"limit": MAX_IMAGES}))
    for url in cleaned:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL_LENGTH or " " in url:
            problems.append(Problem("image_urls", "Not an http(s) address: '{value}'.", {"value": url[:100]}))
            break
    return cleaned


def _quantity(problems: list[Problem], name: str, value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_PACK_QUANTITY:
        problems.append(Problem(name, "Enter a whole number from 1 to {limit}.", {"limit": MAX_PACK_QUANTITY}))
    return value


def check_product(draft: ProductDraft) -> tuple[ProductFields | None, list[Problem]]:
    """Every problem of a product draft at once (a form or an import row shows them all)."""
    problems: list[Problem] = []
    gtin = ""
    try:
        gtin = gtin14(draft.gtin)
    except RuleBroken as broken:
        problems.append(broken.problem)
    name = _text(problems, "name", draft.name, required=True)
    specification = _text(problems, "specification", draft.specification)
    category = _text(problems, "category", draft.category)
    images = _image_urls(problems, draft.image_urls)
    fen: int | None = None
    if draft.price is not None:
        try:
            fen = price_fen(draft.price)
        except RuleBroken as broken:
            problems.append(broken.problem)
    per_case = _quantity(problems, "items_per_case", draft.items_per_case)
    per_pallet = _quantity(problems, "cases_per_pallet", draft.cases_per_pallet)
    if per_pallet is not None and per_case is None:
        problems.append(Problem("cases_per_pallet", "A pallet holds cases: set the items per case first."))
    if problems:
        return None, problems
    return ProductFields(gtin, name, specification, category, images, fen, per_case, per_pallet), []


# Lots.


@dataclass(frozen=True)
class LotDraft:
    lot_number: str
    produced_on: date | None = None
    expires_on: date | None = None
    factory: str = ""
    line: str = ""


@dataclass(frozen=True)
class LotFields:
    lot_number: str
    produced_on: date | None
    expires_on: date | None
    factory: str
    line: str


def lot_number(raw: str) -> str:
    """A GS1 AI (10) lot number: 1 to 20 characters of CSET 82. Surrounding spaces are dropped."""
    number = (raw or "").strip()
    if not number:
        raise RuleBroken(Problem("lot_number", "Enter a lot number."))
    if len(number) > LOT_NUMBER_MAX:
        raise RuleBroken(
            Problem(
                "lot_number",
                "A lot number has at most {limit} characters; this one has {length}.",
                {"limit": LOT_NUMBER_MAX, "length": len(number)},
            )
        )
    for char in number:
        if char not in GS1_CSET82:
            raise RuleBroken(
                Problem(
                    "lot_number",
                    "A lot number may not contain '{char}'; use letters, digits and !\"%&'()*+,-./:;<=>?_ only.",
                    {"char": char},
                )
            )
    return number


def check_lot(draft: LotDraft) -> tuple[LotFields | None, list[Problem]]:
    problems: list[Problem] = []
    number = ""
    try:
        number = lot_number(draft.lot_number)
    except RuleBroken as broken:
        problems.append(broken.problem)
    if draft.produced_on and draft.expires_on and draft.expires_on <= draft.produced_on:
        problems.append(Problem("expires_on", "The expiry date must be after the production date."))
    factory = _text(problems, "factory", draft.factory)
    line = _text(problems, "line", draft.line)
    if problems:
        return None, problems
    return LotFields(number, draft.produced_on, draft.expires_on, factory, line), []
