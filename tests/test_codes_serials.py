"""Serials as an encrypted counter: FF1 against NIST's samples, the vectorised cipher against the
reference, the serial format, round trips, key versions, and malformed serials."""

from __future__ import annotations

import base64
import os
import random

import pytest

from zhongtai.codes import ff1, rules, serials

K128 = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
K192 = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F")
K256 = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94")
TWEAK10 = bytes.fromhex("39383736353433323130")
TWEAK36 = bytes.fromhex("3737373770717273373737")
DIGITS36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def numerals(text: str) -> list[int]:
    return [DIGITS36.index(c) for c in text]


def text_of(digits: list[int]) -> str:
    return "".join(DIGITS36[d] for d in digits)


# NIST SP 800-38G FF1 samples 1–9.
NIST_SAMPLES = [
    (K128, 10, b"", "0123456789", "2433477484"),
    (K128, 10, TWEAK10, "0123456789", "6124200773"),
    (K128, 36, TWEAK36, "0123456789abcdefghi", "a9tv40mll9kdu509eum"),
    (K192, 10, b"", "0123456789", "2830668132"),
    (K192, 10, TWEAK10, "0123456789", "2496655549"),
    (K192, 36, TWEAK36, "0123456789abcdefghi", "xbj3kv35jrawxv32ysr"),
    (K256, 10, b"", "0123456789", "6657667009"),
    (K256, 10, TWEAK10, "0123456789", "1001623463"),
    (K256, 36, TWEAK36, "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"),
]


@pytest.mark.parametrize(("key", "radix", "tweak", "plaintext", "ciphertext"), NIST_SAMPLES)
def test_ff1_reference_matches_nist_samples(
    key: bytes, radix: int, tweak: bytes, plaintext: str, ciphertext: str
) -> None:
    cipher = ff1.FF1(key, radix)
    assert text_of(cipher.encrypt(numerals(plaintext), tweak)) == ciphertext
    assert text_of(cipher.decrypt(numerals(ciphertext), tweak)) == plaintext


@pytest.mark.parametrize("bits", [20, 31, 64, 75, 80])
def test_vectorised_binary_ff1_equals_the_reference(bits: int) -> None:
    rng = random.Random(bits)
    key = rng.randbytes(32)
    reference, fast = ff1.FF1(key, 2), ff1.BinaryFF1(key, bits)

    def as_bits(value: int) -> list[int]:
        return [int(b) for b in format(value, f"0{bits}b")]

    def of_bits(digits: list[int]) -> int:
        return int("".join(map(str, digits)), 2)

    values = [rng.getrandbits(min(bits, 63)) for _ in range(40)] + [0, 1]
    encrypted = fast.encrypt(values)
    assert encrypted == [of_bits(reference.encrypt(as_bits(v))) for v in values]
    assert fast.decrypt(encrypted) == values
    anything = [rng.getrandbits(bits) for _ in range(40)]
    assert fast.decrypt(anything) == [of_bits(reference.decrypt(as_bits(v))) for v in anything]
    # one value at a time, without numpy: the same cipher
    assert [fast.encrypt_int(v) for v in values] == encrypted
    assert [fast.decrypt_int(v) for v in anything] == fast.decrypt(anything)


def test_serials_equal_the_reference_and_have_the_gs1_format() -> None:
    pii_key = os.urandom(32)
    ring = serials.SerialKeyRing({1: pii_key})
    first = 10**12
    made = ring.serials(1, first, 300).decode("ascii")
    listed = [made[i : i + 16] for i in range(0, len(made), 16)]
    key = serials.derive_key(pii_key)
    assert listed[:25] == [serials.reference_serial(1, key, first + i) for i in range(25)]
    assert serials.reference_serial(1, key, first).startswith("B")  # version 1 is base32 "B"
    for serial in listed:
        assert rules.SERIAL_RE.match(serial)
        assert rules.GS1_CSET82.match(serial)
        assert serial[0] == "B"
        assert base64.b32decode(serial)[0] >> 3 == 1


def test_serials_of_a_range_are_distinct_and_look_random() -> None:
    ring = serials.SerialKeyRing({1: os.urandom(32)})
    made = ring.serials(1, 1, 20_000).decode("ascii")
    listed = [made[i : i + 16] for i in range(0, len(made), 16)]
    assert len(set(listed)) == 20_000
    # Consecutive ids, yet every position after the version character takes all 32 values.
    for position in range(1, 16):
        assert len({s[position] for s in listed}) == 32


def test_serials_decrypt_to_their_ids_under_every_key_version() -> None:
    ring = serials.SerialKeyRing({1: os.urandom(32), 2: os.urandom(32)})
    assert ring.current_version == 2
    old = [ring.serial(1, code_id) for code_id in (5, 6, 2**63 - 1)]
    new = [ring.serial(2, code_id) for code_id in (5, 6, 2**40)]
    assert {s[0] for s in old} == {"B"}
    assert {s[0] for s in new} == {"C"}
    assert set(old).isdisjoint(new)
    assert ring.ids(old + new) == dict(zip(old + new, [5, 6, 2**63 - 1, 5, 6, 2**40], strict=True))


def test_one_serial_at_a_time_equals_the_vectorised_path() -> None:
    rng = random.Random(7)
    ring = serials.SerialKeyRing({1: os.urandom(32), 3: os.urandom(32)})
    code_ids = [rng.getrandbits(63) for _ in range(50)] + [0, 1, 2**63 - 1]
    for version in (1, 3):
        made = serials.split(b"".join(ring.serials(version, code_id, 1) for code_id in code_ids))
        assert [ring.serial(version, code_id) for code_id in code_ids] == made
        assert len(made) > serials.SCALAR_BELOW  # the whole group: the vectorised path
        assert ring.ids(made) == dict(zip(made, code_ids, strict=True))
        for serial, code_id in zip(made, code_ids, strict=True):  # one by one: the scalar path
            assert ring.ids([serial]) == {serial: code_id}
    with pytest.raises(ValueError, match="2\\^63"):
        ring.serial(1, 2**63)


def test_malformed_and_foreign_serials_are_left_out() -> None:
    ring = serials.SerialKeyRing({1: os.urandom(32)})
    other = serials.SerialKeyRing({1: os.urandom(32)})
    good = ring.serial(1, 42)
    candidates = [good, "D" + good[1:], good[:15], good.lower(), "B1" + good[2:], good[:15] + "é", ""]
    assert ring.ids(candidates) == {good: 42}
    # Another key decrypts anything to something; only ids below 2^63 survive, and the caller checks
    # that the row with that id holds this very serial.
    foreign = other.serial(1, 42)
    assert ring.ids([foreign]).get(foreign) != 42


def test_ids_beyond_bigint_are_refused() -> None:
    ring = serials.SerialKeyRing({1: os.urandom(32)})
    with pytest.raises(ValueError, match="2\\^63"):
        ring.serials(1, 2**63 - 1, 2)
    with pytest.raises(ValueError, match="versions"):
        ring.serials(32, 1, 1)
    with pytest.raises(serials.SerialKeyMissing):
        ring.serials(3, 1, 1)


def test_key_versions_beyond_the_version_character_are_not_used() -> None:
    ring = serials.SerialKeyRing({1: os.urandom(32), 40: os.urandom(32)})
    assert ring.current_version == 1
