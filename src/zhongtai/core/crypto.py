"""Personal-data encryption (AES-256-GCM, versioned keys), keyed lookup hashes, and token helpers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from zhongtai.core.settings import ResolvedSecrets

NONCE_BYTES = 12


class DecryptionFailed(ValueError):
    pass


class PiiCipher:
    """Encrypts personal data for storage as `v<version>.<base64(nonce ‖ ciphertext ‖ tag)>`.

    The associated data binds a ciphertext to its purpose (e.g. `consumer.phone`) so that a value
    copied into another column does not decrypt. Rotation: add a key with a higher version; new
    writes use it, old rows keep decrypting with their own version until re-encrypted.
    """

    def __init__(self, keys: dict[int, bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is required")
        self._keys = {version: AESGCM(key) for version, key in keys.items()}
        self.current_version = max(keys)

    def encrypt(self, plaintext: str, *, purpose: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.current_version].encrypt(nonce, plaintext.encode(), purpose.encode())
        return f"v{self.current_version}." + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str, *, purpose: str) -> str:
        head, _, body = token.partition(".")
        if not head.startswith("v") or not head[1:].isdigit() or not body:
            raise DecryptionFailed("not a zhongtai ciphertext")
        key = self._keys.get(int(head[1:]))
        if key is None:
            raise DecryptionFailed(f"key version {head[1:]} is not configured")
        try:
            raw = base64.urlsafe_b64decode(body)
        except ValueError as exc:
            raise DecryptionFailed("ciphertext is not valid base64") from exc
        if len(raw) < NONCE_BYTES + 16:  # nonce and tag
            raise DecryptionFailed("ciphertext is too short")
        try:
            return key.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode()).decode()
        except InvalidTag as exc:
            raise DecryptionFailed("ciphertext does not authenticate") from exc

    def key_version(self, token: str) -> int:
        return int(token.partition(".")[0][1:])


class Crypto:
    def __init__(self, resolved: ResolvedSecrets) -> None:
        self.pii = PiiCipher(resolved.pii_keys)
        self._lookup_key = resolved.lookup_key
        self._secret_key = resolved.secret_key

    def lookup_hash(self, value: str, *, purpose: str) -> str:
        """Deterministic keyed hash (HMAC-SHA256) to find a row by an encrypted value."""
        return hmac.new(self._lookup_key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()

    def sign(self, value: str, *, purpose: str) -> str:
        return hmac.new(self._secret_key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()

    @property
    def secret_key(self) -> bytes:
        return self._secret_key


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_token(prefix: str, nbytes: int = 32) -> str:
    """A bearer secret like `zt_<43 url-safe chars>`; high entropy, so a plain SHA-256 stores it."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def mask_phone(e164: str) -> str:
    """+8613812345678 → 138****5678; other countries keep their code and the last four digits."""
    digits = e164.lstrip("+")
    if digits.startswith("86") and len(digits) == 13:
        national = digits[2:]
        return f"{national[:3]}****{national[-4:]}"
    return f"+{digits[:2]}****{digits[-4:]}"
