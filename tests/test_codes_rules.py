"""Pure rules of codes: SSCC check digits, PINs, Digital Link round trips."""

from __future__ import annotations

import pytest

from zhongtai.codes import rules, serials

SERIAL = serials.SerialKeyRing({1: b"k" * 32}).serial(1, 1234)


def gs1_mod10(body: str) -> str:
    """GS1 check digit written out independently of the library used by the code under test."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


@pytest.mark.parametrize(
    ("extension", "prefix", "reference"),
    [(0, "6901234", 1), (3, "0614141", 123456789), (9, "690123456789", 9999), (1, "123456", 9_999_999_999)],
)
def test_sscc_check_digit(extension: int, prefix: str, reference: int) -> None:
    value = rules.sscc(extension, prefix, reference)
    assert len(value) == 18
    assert value.startswith(f"{extension}{prefix}")
    assert value[-1] == gs1_mod10(value[:-1])
    assert rules.is_valid_sscc(value)
    broken = value[:-1] + str((int(value[-1]) + 1) % 10)
    assert not rules.is_valid_sscc(broken)


def test_sscc_reference_must_fit() -> None:
    assert rules.sscc_capacity("6901234") == 10**9
    with pytest.raises(ValueError, match="does not fit"):
        rules.sscc(0, "6901234", 10**9)


def test_known_sscc_vector() -> None:
    # The GS1 General Specifications' example SSCC: (00) 1 0614141 123456789 7
    assert rules.sscc(1, "0614141", 123456789) == "106141411234567897"


def test_pin_is_eight_digits_keyed_and_stable() -> None:
    key_a, key_b = b"a" * 32, b"b" * 32
    pin = rules.pin_for(key_a, "ABCDEFGHIJKLMNOP")
    assert len(pin) == 8
    assert pin.isdigit()
    assert rules.pin_for(key_a, "ABCDEFGHIJKLMNOP") == pin
    assert rules.pin_for(key_b, "ABCDEFGHIJKLMNOP") != pin
    assert rules.check_pin(key_a, "ABCDEFGHIJKLMNOP", f" {pin} ")
    assert not rules.check_pin(key_b, "ABCDEFGHIJKLMNOP", pin)


def test_digital_link_round_trip_with_lot_needing_escape() -> None:
    serial = SERIAL
    uri = rules.item_link("https://id.brand.example", "06901234567892", serial, "L26/A+1")
    assert uri == f"https://id.brand.example/01/06901234567892/10/L26%2FA%2B1/21/{serial}"
    parsed = rules.parse_code(uri)
    assert parsed == rules.ParsedCode(serial=serial, gtin="06901234567892", lot="L26/A+1")


def test_digital_link_without_lot_and_sscc_and_short_forms() -> None:
    serial = SERIAL
    assert rules.parse_code(rules.item_link("http://127.0.0.1:8000", "06901234567892", serial)).serial == serial
    sscc = rules.sscc(0, "6901234", 42)
    assert rules.parse_code(rules.sscc_link("https://id.brand.example", sscc)) == rules.ParsedCode(sscc=sscc)
    assert rules.parse_code(sscc).sscc == sscc
    assert rules.parse_code(serial.lower()).serial == serial
    assert rules.parse_code(f"https://old.brand.example/s/{serial}").serial == serial


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("hello", "Not a code"),
        ("069012340000000017", "check digit"),
        ("https://id.brand.example/01/06901234567892", "no serialised item"),
        ("https://id.brand.example/01/06901234567893/21/ABC", "GTIN's check digit"),
        ("https://id.brand.example/00/069012340000000017", "check digit"),
    ],
)
def test_unreadable_codes_say_why(text: str, reason: str) -> None:
    with pytest.raises(rules.UnreadableCode, match=reason):
        rules.parse_code(text)


def test_resolver_base_must_be_an_origin() -> None:
    assert rules.check_resolver_base("https://id.brand.example/") == "https://id.brand.example"
    for bad in ("ftp://x", "https://x/path", "id.brand.example", "https://x?q=1"):
        with pytest.raises(ValueError, match="resolver address"):
            rules.check_resolver_base(bad)
