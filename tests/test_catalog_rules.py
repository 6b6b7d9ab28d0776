"""Pure catalog rules: GTIN check digits, lot numbers, packaging and prices (no database)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from zhongtai.catalog import rules
from zhongtai.catalog.rules import LotDraft, ProductDraft, RuleBroken


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("96385074", "00000096385074"),  # GTIN-8
        ("036000291452", "00036000291452"),  # GTIN-12 (UPC-A)
        ("4006381333931", "04006381333931"),  # GTIN-13
        ("6901234567892", "06901234567892"),  # GTIN-13, GS1 China prefix
        ("10012345000017", "10012345000017"),  # GTIN-14 with indicator digit 1
        ("00614141999996", "00614141999996"),  # GTIN-14 that pads a GTIN-12
        (" 690-1234-567892 ", "06901234567892"),  # spaces and hyphens are ignored
        ("６９０１２３４５６７８９２", "06901234567892"),  # full-width digits typed with a Chinese IME
    ],
)
def test_valid_gtins_are_stored_as_gtin14(raw: str, stored: str) -> None:
    assert rules.gtin14(raw) == stored


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("4006381333932", "Wrong check digit in GTIN 4006381333932: expected 1, got 2."),
        ("96385075", "Wrong check digit in GTIN 96385075: expected 4, got 5."),
        ("036000291450", "Wrong check digit in GTIN 036000291450: expected 2, got 0."),
        ("10012345000011", "Wrong check digit in GTIN 10012345000011: expected 7, got 1."),
        ("1234567", "A GTIN has 8, 12, 13 or 14 digits; this one has 7."),
        ("123456789012345", "A GTIN has 8, 12, 13 or 14 digits; this one has 15."),
        ("12345678901", "A GTIN has 8, 12, 13 or 14 digits; this one has 11."),
        ("69012345678X2", "A GTIN has digits only; '69012345678X2' has other characters."),
        ("", "Enter a GTIN."),
        ("00000000", "A GTIN cannot be all zeros."),
    ],
)
def test_invalid_gtins_are_refused_with_a_reason(raw: str, message: str) -> None:
    with pytest.raises(RuleBroken) as refused:
        rules.gtin14(raw)
    assert refused.value.problem.message == message
    assert refused.value.problem.field == "gtin"


def test_wrong_check_digit_names_the_expected_digit_as_data() -> None:
    with pytest.raises(RuleBroken) as refused:
        rules.gtin14("6901234567893")
    assert dict(refused.value.problem.values) == {"gtin": "6901234567893", "expected": "2", "given": "3"}


def test_display_gtin() -> None:
    assert rules.display_gtin("06901234567892") == "6901234567892"
    assert rules.display_gtin("10012345000017") == "10012345000017"


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("A1", "A1"),
        (" 2024-11-22/L3 ", "2024-11-22/L3"),
        ("!\"%&'()*+,-./:;<=>?_", "!\"%&'()*+,-./:;<=>?_"),
        ("x" * 20, "x" * 20),
    ],
)
def test_valid_lot_numbers(raw: str, stored: str) -> None:
    assert rules.lot_number(raw) == stored


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Enter a lot number."),
        ("x" * 21, "A lot number has at most 20 characters; this one has 21."),
        ("LOT 1", "A lot number may not contain ' '; use letters, digits and !\"%&'()*+,-./:;<=>?_ only."),
        ("批次1", "A lot number may not contain '批'; use letters, digits and !\"%&'()*+,-./:;<=>?_ only."),
        ("L#1", "A lot number may not contain '#'; use letters, digits and !\"%&'()*+,-./:;<=>?_ only."),
    ],
)
def test_invalid_lot_numbers(raw: str, message: str) -> None:
    with pytest.raises(RuleBroken) as refused:
        rules.lot_number(raw)
    assert refused.value.problem.message == message


def test_lot_expiry_must_follow_production() -> None:
    fields, problems = rules.check_lot(LotDraft("L1", date(2025, 1, 2), date(2025, 1, 2)))
    assert fields is None
    assert [(p.field, p.message) for p in problems] == [
        ("expires_on", "The expiry date must be after the production date.")
    ]
    fields, problems = rules.check_lot(LotDraft("L1", date(2025, 1, 2), date(2026, 1, 1), " Plant  A ", "3"))
    assert problems == []
    assert fields == rules.LotFields("L1", date(2025, 1, 2), date(2026, 1, 1), "Plant A", "3")


def test_product_reports_every_problem_at_once() -> None:
    draft = ProductDraft(
        gtin="6901234567893",
        name="  ",
        image_urls=["ftp://x/y.png"],
        price=Decimal("1.234"),
        items_per_case=0,
        cases_per_pallet=None,
    )
    fields, problems = rules.check_product(draft)
    assert fields is None
    assert [(p.field, p.message) for p in problems] == [
        ("gtin", "Wrong check digit in GTIN 6901234567893: expected 2, got 3."),
        ("name", "This field is required."),
        ("image_urls", "Not an http(s) address: 'ftp://x/y.png'."),
        ("price", "A price has at most two decimals (fen)."),
        ("items_per_case", "Enter a whole number from 1 to 1000000."),
    ]


def test_pallet_needs_a_case_and_prices_are_fen() -> None:
    _fields, problems = rules.check_product(ProductDraft(gtin="6901234567892", name="Tea", cases_per_pallet=40))
    assert [(p.field, p.message) for p in problems] == [
        ("cases_per_pallet", "A pallet holds cases: set the items per case first.")
    ]
    fields, problems = rules.check_product(
        ProductDraft(
            gtin="6901234567892", name=" Green  tea ", price=Decimal("12.5"), items_per_case=24, cases_per_pallet=40
        )
    )
    assert problems == []
    assert fields is not None
    assert (fields.gtin, fields.name, fields.price_fen, fields.items_per_case, fields.cases_per_pallet) == (
        "06901234567892",
        "Green tea",
        1250,
        24,
        40,
    )
    assert rules.format_price(1250) == "12.50"
    with pytest.raises(RuleBroken) as negative:
        rules.price_fen(Decimal("-1"))
    assert str(negative.value) == "A price cannot be negative."
    with pytest.raises(RuleBroken) as huge:
        rules.price_fen(Decimal("100000000"))
    assert str(huge.value) == "A price is at most 99999999.99."
