"""Item serials as an encrypted counter: serial = version ‖ FF1(key of the version, code id).

A serial is 80 bits written as 16 characters of RFC 4648 base32 (A–Z, 2–7): the first character is
the key version (5 bits, 1–31), the other 15 are the code's id encrypted with FF1 (NIST SP 800-38G,
AES-256) over a 75-bit domain. FF1 is a permutation under one key, so two ids never share a serial
and serials of different key versions differ in their first character: serials are unique by
construction, with no index to enforce it. A serial decrypts back to its code's id, so finding a
code by its serial is a primary-key lookup. The arithmetic of guessing is in docs/codes.md.

Keys: the serial key of version v is derived (HKDF-SHA256, its own label) from the platform's PII key
of version v (ZT_PII_KEYS); new batches use the newest version. A PII key version must therefore be
kept for as long as codes made under it are in use. No I/O here except reading the settings a
database session carries.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from numpy.typing import NDArray
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.codes import ff1

SERIAL_LENGTH = 16
SERIAL_BITS = 80
VERSION_BITS = 5
COUNTER_BITS = SERIAL_BITS - VERSION_BITS  # 75: the FF1 domain
MAX_VERSION = 2**VERSION_BITS - 1
MAX_ID = 2**63 - 1  # code ids are BIGINT
ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SCALAR_BELOW = 8  # up to this many serials of one key version are decrypted one by one, without numpy
HKDF_INFO = b"zhongtai codes serial key v1"

_ENCODE = bytes.maketrans(bytes(range(32)), ALPHABET)
_DECODE = bytes.maketrans(ALPHABET, bytes(range(32)))


class SerialKeyMissing(LookupError):
    pass


def derive_key(pii_key: bytes) -> bytes:
    """The AES-256 serial key that belongs to one PII key version."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(pii_key)


class SerialKeyRing:
    """The serial ciphers of every configured key version."""

    def __init__(self, pii_keys: dict[int, bytes]) -> None:
        usable = {version: key for version, key in pii_keys.items() if 1 <= version <= MAX_VERSION}
        self._ciphers = {version: ff1.BinaryFF1(derive_key(key), COUNTER_BITS) for version, key in usable.items()}
        self.current_version = max(self._ciphers) if self._ciphers else None

    def cipher(self, version: int) -> ff1.BinaryFF1:
        found = self._ciphers.get(version)
        if found is None:
            raise SerialKeyMissing(f"serial key version {version} is not configured")
        return found

    def serials(self, version: int, first_id: int, count: int) -> bytes:
        """The serials of ids first_id … first_id + count − 1, concatenated (16 ASCII bytes each)."""
        if not 1 <= version <= MAX_VERSION:
            raise ValueError("serial key versions are 1 to 31")
        if first_id < 0 or first_id + count - 1 > MAX_ID:
            raise ValueError("code ids are 0 to 2^63 - 1")
        cipher = self.cipher(version)
        a, b = cipher.encrypt_arrays(*cipher.split(np.arange(first_id, first_id + count, dtype=np.uint64)))
        return _encode(version, a, b, cipher.v)

    def serial(self, version: int, code_id: int) -> str:
        if not 1 <= version <= MAX_VERSION:
            raise ValueError("serial key versions are 1 to 31")
        if not 0 <= code_id <= MAX_ID:
            raise ValueError("code ids are 0 to 2^63 - 1")
        value = (version << COUNTER_BITS) | self.cipher(version).encrypt_int(code_id)
        return base64.b32encode(value.to_bytes(SERIAL_BITS // 8, "big")).decode("ascii")

    def ids(self, serials: Iterable[str]) -> dict[str, int]:
        """The code ids the given serials stand for; serials that are malformed, of an unknown key
        version or that decrypt to no possible id are left out."""
        by_version: dict[int, list[str]] = {}
        for serial in serials:
            if len(serial) != SERIAL_LENGTH or not serial.isascii():
                continue
            encoded = serial.encode("ascii")
            if encoded.translate(None, ALPHABET):  # a character outside the alphabet
                continue
            version = ALPHABET.find(encoded[:1])
            if version in self._ciphers:
                by_version.setdefault(version, []).append(serial)
        found: dict[str, int] = {}
        for version, group in by_version.items():
            cipher = self._ciphers[version]
            if len(group) <= SCALAR_BELOW:
                for serial in group:
                    value = int.from_bytes(base64.b32decode(serial), "big") & ((1 << COUNTER_BITS) - 1)
                    code_id = cipher.decrypt_int(value)
                    if code_id <= MAX_ID:
                        found[serial] = code_id
                continue
            decoded = _decode(group)
            assert decoded is not None, "every serial of the group is within the alphabet"
            a, b = cipher.decrypt_arrays(*decoded)
            # An id is below 2^63: A below 2^(63 - v).
            possible = a < np.uint64(1 << (63 - cipher.v))
            code_ids = (a << np.uint64(cipher.v)) | b
            for serial, ok, code_id in zip(group, possible.tolist(), code_ids.tolist(), strict=True):
                if ok:
                    found[serial] = code_id
        return found


def split(made: bytes) -> list[str]:
    """Concatenated serials (as `SerialKeyRing.serials` makes them) → a list of serials."""
    return np.frombuffer(made, dtype=f"S{SERIAL_LENGTH}").astype(f"U{SERIAL_LENGTH}").tolist()  # type: ignore[no-any-return]


@lru_cache(maxsize=16)
def _ring(pii_keys: tuple[tuple[int, bytes], ...]) -> SerialKeyRing:
    return SerialKeyRing(dict(pii_keys))


def keyring_for(pii_keys: dict[int, bytes]) -> SerialKeyRing:
    return _ring(tuple(sorted(pii_keys.items())))


def keyring(session: AsyncSession) -> SerialKeyRing:
    """The key ring of the platform the session's database belongs to (see `core.db.Database`)."""
    settings = session.info.get("settings")
    if settings is None:
        raise RuntimeError("this session does not come from a zhongtai Database")
    return keyring_for(settings.secrets.pii_keys)


# Base32 of 80-bit values held as two 40-bit halves (numpy uint64): 8 characters of 5 bits each.
_SHIFTS = np.array([35 - 5 * k for k in range(8)], dtype=np.uint64)
_FIVE = np.uint64(31)


def _encode(version: int, a: NDArray[np.uint64], b: NDArray[np.uint64], v: int) -> bytes:
    # value = version ‖ A (u bits) ‖ B (v bits); top half = value >> 40, bottom half = value mod 2^40.
    below = 40 - v  # the low bits of A that fall in the bottom half
    top = np.uint64(version << (COUNTER_BITS - 40)) | (a >> np.uint64(below))
    bottom = ((a & np.uint64((1 << below) - 1)) << np.uint64(v)) | b
    digits = np.empty((len(a), SERIAL_LENGTH), dtype=np.uint8)
    for k, shift in enumerate(_SHIFTS):
        digits[:, k] = (top >> shift) & _FIVE
        digits[:, 8 + k] = (bottom >> shift) & _FIVE
    return digits.tobytes().translate(_ENCODE)


def _decode(serials: Sequence[str]) -> tuple[NDArray[np.uint64], NDArray[np.uint64]] | None:
    """(A, B) arrays of the 75-bit values (the version character is dropped); None when any serial
    holds a character outside the alphabet."""
    text = "".join(serials).encode("ascii")
    if text.translate(None, ALPHABET):
        return None
    digits = np.frombuffer(text.translate(_DECODE), dtype=np.uint8).reshape(len(serials), SERIAL_LENGTH)
    top = np.zeros(len(serials), dtype=np.uint64)
    bottom = np.zeros(len(serials), dtype=np.uint64)
    for k, shift in enumerate(_SHIFTS):
        top |= digits[:, k].astype(np.uint64) << shift
        bottom |= digits[:, 8 + k].astype(np.uint64) << shift
    v = COUNTER_BITS - COUNTER_BITS // 2
    below = 40 - v
    a = ((top & np.uint64((1 << (COUNTER_BITS - 40)) - 1)) << np.uint64(below)) | (bottom >> np.uint64(v))
    return a, bottom & np.uint64((1 << v) - 1)


def reference_serial(version: int, key: bytes, code_id: int) -> str:
    """The serial of one id through the reference FF1 and the standard library's base32; for tests."""
    digits = [int(bit) for bit in format(code_id, f"0{COUNTER_BITS}b")]
    encrypted = int("".join(map(str, ff1.FF1(key, 2).encrypt(digits))), 2)
    value = (version << COUNTER_BITS) | encrypted
    return base64.b32encode(value.to_bytes(SERIAL_BITS // 8, "big")).decode("ascii")
