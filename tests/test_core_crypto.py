"""Personal-data encryption and keyed hashes (core/crypto.py)."""

from __future__ import annotations

import base64
import os

import pytest

from zhongtai.core.crypto import Crypto, DecryptionFailed, PiiCipher, mask_phone
from zhongtai.core.settings import ResolvedSecrets

KEY_1, KEY_2 = os.urandom(32), os.urandom(32)
PHONE = "+8613812345678"


def test_round_trip() -> None:
    cipher = PiiCipher({1: KEY_1})
    for value in (PHONE, "", "上海市浦东新区 世纪大道 100 号", "x" * 500):
        token = cipher.encrypt(value, purpose="consumer.address")
        assert token.startswith("v1.")
        assert value not in token or value == ""
        assert cipher.decrypt(token, purpose="consumer.address") == value
    # A fresh nonce every time: equal values do not give equal ciphertexts.
    assert cipher.encrypt(PHONE, purpose="p") != cipher.encrypt(PHONE, purpose="p")


def test_key_rotation() -> None:
    old = PiiCipher({1: KEY_1})
    before = old.encrypt(PHONE, purpose="consumer.phone")
    rotated = PiiCipher({1: KEY_1, 2: KEY_2})
    assert rotated.current_version == 2
    assert rotated.decrypt(before, purpose="consumer.phone") == PHONE
    after = rotated.encrypt(PHONE, purpose="consumer.phone")
    assert after.startswith("v2.")
    assert rotated.key_version(after) == 2
    assert rotated.key_version(before) == 1
    assert rotated.decrypt(after, purpose="consumer.phone") == PHONE
    with pytest.raises(DecryptionFailed, match="key version 2 is not configured"):
        old.decrypt(after, purpose="consumer.phone")
    retired = PiiCipher({2: KEY_2})
    with pytest.raises(DecryptionFailed, match="key version 1 is not configured"):
        retired.decrypt(before, purpose="consumer.phone")
    # The same through the configuration.
    configured = Crypto(
        ResolvedSecrets(
            b"s" * 32,
            {1: KEY_1, 2: KEY_2},
            b"l" * 32,
        )
    )
    assert configured.pii.decrypt(before, purpose="consumer.phone") == PHONE
    assert configured.pii.encrypt(PHONE, purpose="consumer.phone").startswith("v2.")


def test_purpose_binding() -> None:
    cipher = PiiCipher({1: KEY_1})
    token = cipher.encrypt(PHONE, purpose="consumer.phone")
    for other in ("consumer.id_number", "consumer.phone ", ""):
        with pytest.raises(DecryptionFailed, match="does not authenticate"):
            cipher.decrypt(token, purpose=other)


def _tampered(token: str) -> list[str]:
    head, _, body = token.partition(".")
    raw = bytearray(base64.urlsafe_b64decode(body))
    variants = []
    for index in range(len(raw)):  # every byte: nonce, ciphertext and tag
        flipped = bytearray(raw)
        flipped[index] ^= 0x01
        variants.append(f"{head}." + base64.urlsafe_b64encode(bytes(flipped)).decode())
    variants += [
        f"{head}." + base64.urlsafe_b64encode(bytes(raw[:-1])).decode(),  # tag cut short
        f"{head}." + base64.urlsafe_b64encode(bytes(raw[:11])).decode(),  # not even a nonce
        f"{head}." + base64.urlsafe_b64encode(bytes(raw) + b"\x00").decode(),
        f"v2.{body}",  # another key's version
        f"{head}.{body[:-3]}",  # broken base64
        f"{head}.!!!!",
        f"{head}.",
        "v.abc",
        "1.abc",
        "",
        body,
    ]
    return variants


def test_tampering_is_detected() -> None:
    cipher = PiiCipher({1: KEY_1, 2: KEY_2})
    token = PiiCipher({1: KEY_1}).encrypt(PHONE, purpose="consumer.phone")
    for variant in _tampered(token):
        with pytest.raises(DecryptionFailed):
            cipher.decrypt(variant, purpose="consumer.phone")
    assert cipher.decrypt(token, purpose="consumer.phone") == PHONE


def test_lookup_hash_is_keyed_and_purpose_bound() -> None:
    crypto = Crypto(ResolvedSecrets(b"s" * 32, {1: KEY_1}, b"l" * 32))
    other_key = Crypto(ResolvedSecrets(b"s" * 32, {1: KEY_1}, b"m" * 32))
    digest = crypto.lookup_hash(PHONE, purpose="consumer.phone")
    assert len(digest) == 64
    assert digest == crypto.lookup_hash(PHONE, purpose="consumer.phone")
    assert digest != crypto.lookup_hash(PHONE, purpose="partner.phone")
    assert digest != other_key.lookup_hash(PHONE, purpose="consumer.phone")
    assert digest != crypto.sign(PHONE, purpose="consumer.phone")


def test_mask_phone() -> None:
    assert mask_phone("+8613812345678") == "138****5678"
    assert mask_phone("+14155552671") == "+14****2671"
    assert mask_phone("+85291234567") == "+85****4567"
