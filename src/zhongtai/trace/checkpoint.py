"""Signed tree heads as C2SP checkpoints (https://c2sp.org/tlog-checkpoint, https://c2sp.org/signed-note).

A checkpoint is this note text, then a blank line, then one signature line:

    <origin>                      e.g. zhongtai.example/epcis/log/moutai-demo
    <tree size>                   decimal
    <base64 root hash>            RFC 9162 MTH of the first <tree size> leaves
    timestamp <unix seconds>      an extension line (see below)

    — <key name> <base64(key id ‖ Ed25519 signature over the note text)>

The key name is the origin; the key id is `SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]` as the
signed-note spec recommends for Ed25519. The timestamp (when the head was signed) is an extension line
rather than part of the origin so that the origin stays one log identity; it is covered by the
signature, and verifiers that do not know it ignore it as C2SP tells them to.

Each tenant has its own signing key (versioned; the private key encrypted at rest with the platform's
PII keys under the purpose `trace.log_key`). `do_sign_tree_head` signs the current size, refusing a
head that is not consistent with the previous one (ARCHITECTURE invariant 6); every head is kept.

The `verify_*` functions at the end need nothing but the published texts and the public key: they are
what `zhongtai verify` runs offline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import jobs
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.errors import NotFound
from zhongtai.core.models import Tenant
from zhongtai.trace import log, merkle
from zhongtai.trace.log_models import TraceCheckpoint, TraceLogKey

KEY_PURPOSE = "trace.log_key"
ED25519_TYPE = b"\x01"
TIMESTAMP_PREFIX = "timestamp "
SIGNATURE_DASH = "\u2014"
MAX_CHECKPOINT_BYTES = 16_384


class NoSignedTreeHead(NotFound):
    code = "no_signed_tree_head"
    default_message = "This log has no signed tree head yet."


class CheckpointInvalid(ValueError):
    """A checkpoint that is malformed or not signed by the expected key."""


# Keys and their published forms.


def log_origin(public_url: str, tenant_slug: str) -> str:
    """`host[:port][/path]/epcis/log/<slug>` — a schema-less URL, as C2SP recommends for origins."""
    parts = urlsplit(public_url)
    return f"{parts.netloc}{parts.path.rstrip('/')}/epcis/log/{tenant_slug}"


def key_id(key_name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(key_name.encode() + b"\n" + ED25519_TYPE + public_key).digest()[:4]


def verifier_key(key_name: str, public_key: bytes) -> str:
    """The `name+keyid+base64(0x01 ‖ key)` verifier-key string used by Go's note package and others."""
    encoded = base64.b64encode(ED25519_TYPE + public_key).decode()
    return f"{key_name}+{key_id(key_name, public_key).hex()}+{encoded}"


def parse_public_key(text: str) -> tuple[str | None, bytes]:
    """A verifier-key string (name included) or the bare base64 of the 32-byte Ed25519 key."""
    text = text.strip()
    parts = text.split("+", 2)  # a key name holds no '+'; base64 may
    if len(parts) == 3 and re.fullmatch(r"[0-9a-fA-F]{8}", parts[1]):
        name, hex_id, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise CheckpointInvalid("the verifier key is not valid base64") from exc
        if len(raw) != 33 or raw[:1] != ED25519_TYPE:
            raise CheckpointInvalid("the verifier key is not an Ed25519 note key")
        if key_id(name, raw[1:]).hex() != hex_id.lower():
            raise CheckpointInvalid("the verifier key's id does not match its name and key")
        return name, raw[1:]
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise CheckpointInvalid("the public key is neither a verifier key nor base64") from exc
    if len(raw) != 32:
        raise CheckpointInvalid(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    return None, raw


def _raw_public(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


# The note format.


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    timestamp: int | None
    text: str
    signatures: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # (key name, key id, signature)

    @property
    def body(self) -> str:
        return self.text[: self.text.rindex("\n\n") + 1]


def checkpoint_body(origin: str, tree_size: int, root_hash: bytes, timestamp: int) -> str:
    return f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode()}\n{TIMESTAMP_PREFIX}{timestamp}\n"


def sign_note(body: str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    signature = private_key.sign(body.encode())
    encoded = base64.b64encode(key_id(key_name, _raw_public(private_key)) + signature).decode()
    return f"{body}\n{SIGNATURE_DASH} {key_name} {encoded}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    if len(text.encode()) > MAX_CHECKPOINT_BYTES:
        raise CheckpointInvalid("the checkpoint is too large")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise CheckpointInvalid("a signed note holds no control characters other than newlines")
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise CheckpointInvalid("a signed note is text, a blank line, then signature lines")
    body, signature_block = text[: split + 1], text[split + 2 :]
    lines = body[:-1].split("\n")
    if len(lines) < 3 or any(not line for line in lines):
        raise CheckpointInvalid("a checkpoint has an origin, a tree size and a root hash, each on its own line")
    origin, size_text, root_text = lines[:3]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise CheckpointInvalid(f"the tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise CheckpointInvalid("the root hash is not base64") from exc
    if len(root) != merkle.HASH_SIZE:
        raise CheckpointInvalid("the root hash is not 32 bytes")
    timestamp = None
    for extension in lines[3:]:
        if extension.startswith(TIMESTAMP_PREFIX) and extension[len(TIMESTAMP_PREFIX) :].isdigit():
            timestamp = int(extension[len(TIMESTAMP_PREFIX) :])
    signatures: list[tuple[str, bytes, bytes]] = []
    for line in signature_block[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != SIGNATURE_DASH or not parts[1]:
            raise CheckpointInvalid("a signature line is '— <key name> <base64 signature>'")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error as exc:
            raise CheckpointInvalid("a signature is not base64") from exc
        if len(raw) < 5:
            raise CheckpointInvalid("a signature is too short")
        signatures.append((parts[1], raw[:4], raw[4:]))
    return Checkpoint(origin, int(size_text), root, timestamp, text, signatures)


def verify_checkpoint(text: str, public_key: bytes, key_name: str | None = None) -> Checkpoint:
    """Parse a checkpoint and check its signature by this key (named like the origin unless given)."""
    checkpoint = parse_checkpoint(text)
    name = key_name or checkpoint.origin
    wanted_id = key_id(name, public_key)
    matching = [sig for n, kid, sig in checkpoint.signatures if n == name and kid == wanted_id]
    if not matching:
        raise CheckpointInvalid(f"the checkpoint carries no signature by the key {name} ({wanted_id.hex()})")
    verifier = Ed25519PublicKey.from_public_bytes(public_key)
    for signature in matching:
        try:
            verifier.verify(signature, checkpoint.body.encode())
        except InvalidSignature as exc:
            raise CheckpointInvalid("the checkpoint's signature does not verify: the text was changed") from exc
    return checkpoint


# Stored keys and heads.


async def _current_key(session: AsyncSession, tenant_id: uuid.UUID) -> TraceLogKey | None:
    return await session.scalar(
        select(TraceLogKey)
        .where(TraceLogKey.tenant_id == tenant_id, TraceLogKey.retired_at.is_(None))
        .order_by(TraceLogKey.version.desc())
        .limit(1)
    )


async def signing_key(
    session: AsyncSession, crypto: Crypto, tenant_id: uuid.UUID, *, public_url: str
) -> tuple[TraceLogKey, Ed25519PrivateKey]:
    """The tenant's current signing key, created on first use."""
    row = await _current_key(session, tenant_id)
    if row is None:
        tenant = await session.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFound("No such brand.")
        private_key = Ed25519PrivateKey.generate()
        seed = private_key.private_bytes_raw()
        newest = await session.scalar(select(func.max(TraceLogKey.version)).where(TraceLogKey.tenant_id == tenant_id))
        row = TraceLogKey(
            tenant_id=tenant_id,
            version=int(newest or 0) + 1,
            key_name=log_origin(public_url, tenant.slug),
            public_key=_raw_public(private_key),
            private_key_ciphertext=crypto.pii.encrypt(seed.hex(), purpose=KEY_PURPOSE),
        )
        session.add(row)
        await session.flush()
        return row, private_key
    seed = bytes.fromhex(crypto.pii.decrypt(row.private_key_ciphertext, purpose=KEY_PURPOSE))
    return row, Ed25519PrivateKey.from_private_bytes(seed)


async def public_keys(session: AsyncSession, tenant_id: uuid.UUID) -> list[TraceLogKey]:
    rows = await session.scalars(
        select(TraceLogKey).where(TraceLogKey.tenant_id == tenant_id).order_by(TraceLogKey.version.desc())
    )
    return list(rows)


async def latest_checkpoint(session: AsyncSession, tenant_id: uuid.UUID) -> TraceCheckpoint | None:
    return await session.scalar(
        select(TraceCheckpoint)
        .where(TraceCheckpoint.tenant_id == tenant_id)
        .order_by(TraceCheckpoint.tree_size.desc())
        .limit(1)
    )


async def get_latest_checkpoint(session: AsyncSession, tenant_id: uuid.UUID) -> TraceCheckpoint:
    latest = await latest_checkpoint(session, tenant_id)
    if latest is None:
        raise NoSignedTreeHead()
    return latest


async def checkpoint_at(session: AsyncSession, tenant_id: uuid.UUID, tree_size: int) -> TraceCheckpoint | None:
    return await session.scalar(
        select(TraceCheckpoint).where(TraceCheckpoint.tenant_id == tenant_id, TraceCheckpoint.tree_size == tree_size)
    )


async def list_checkpoints(
    session: AsyncSession, tenant_id: uuid.UUID, *, from_size: int = 0, limit: int = 50
) -> list[TraceCheckpoint]:
    rows = await session.scalars(
        select(TraceCheckpoint)
        .where(TraceCheckpoint.tenant_id == tenant_id, TraceCheckpoint.tree_size >= from_size)
        .order_by(TraceCheckpoint.tree_size)
        .limit(limit)
    )
    return list(rows)


async def do_sign_tree_head(
    session: AsyncSession, crypto: Crypto, tenant_id: uuid.UUID, *, public_url: str
) -> TraceCheckpoint:
    """Sign and keep the head at the log's current size; the latest head when the log has not grown.

    Holds the log row (appends wait) so that the size signed is the size stored. Refuses with
    `LogInconsistent` a head that a consistency proof cannot link to the previous one — the stored
    tree was changed under a published head, which must never be signed over.
    """
    size = await log.lock_size(session, tenant_id)
    latest = await latest_checkpoint(session, tenant_id)
    if latest is not None and latest.tree_size == size:
        return latest
    if latest is not None and size < latest.tree_size:
        raise log.LogInconsistent(
            f"The log has {size} entries but a head of size {latest.tree_size} was signed.",
            size=size,
            signed_size=latest.tree_size,
        )
    root = await log.tree_head(session, tenant_id, size)
    if latest is not None:
        proof = await log.consistency_proof(session, tenant_id, latest.tree_size, size)
        if not merkle.verify_consistency(latest.tree_size, size, latest.root_hash, root, proof):
            raise log.LogInconsistent(
                f"The stored tree of size {size} does not extend the signed head of size {latest.tree_size}.",
                size=size,
                signed_size=latest.tree_size,
            )
    key, private_key = await signing_key(session, crypto, tenant_id, public_url=public_url)
    signed_at = utcnow()
    body = checkpoint_body(key.key_name, size, root, int(signed_at.timestamp()))
    row = TraceCheckpoint(
        tenant_id=tenant_id,
        tree_size=size,
        root_hash=root,
        key_version=key.version,
        signed_at=signed_at,
        note=sign_note(body, key.key_name, private_key),
    )
    session.add(row)
    await session.flush()
    return row


@jobs.job_handler(log.SIGN_TOPIC)
async def sign_job(ctx: jobs.JobContext) -> None:
    """The `trace.log.sign` job the log's appends schedule: sign the tenant's current head."""
    if ctx.database is None:
        raise RuntimeError("the signing job needs the database's settings for the key")
    settings = ctx.database.settings
    await do_sign_tree_head(ctx.session, Crypto(settings.secrets), ctx.tenant_id, public_url=settings.public_url)


# Offline verification: what an auditor runs with the published texts and the public key.


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def _hashes(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise CheckpointInvalid(f"{what} must be a list of base64 hashes")
    try:
        decoded = [base64.b64decode(value, validate=True) for value in values]
    except (binascii.Error, TypeError) as exc:
        raise CheckpointInvalid(f"{what} holds a value that is not base64") from exc
    return decoded


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CheckpointInvalid(f"{what} must be a whole number")
    return value


def verify_inclusion_bundle(
    checkpoint_text: str, public_key: bytes, proof: dict[str, Any], entry: str, *, key_name: str | None = None
) -> Verdict:
    """Is `entry` (an event hash ID) in the log whose signed checkpoint is given?"""
    try:
        checkpoint = verify_checkpoint(checkpoint_text, public_key, key_name)
        leaf_index = _int(proof.get("leaf_index"), "leaf_index")
        tree_size = _int(proof.get("tree_size"), "tree_size")
        path = _hashes(proof.get("inclusion_path"), "inclusion_path")
    except CheckpointInvalid as exc:
        return Verdict(False, str(exc))
    if tree_size != checkpoint.tree_size:
        return Verdict(False, f"the proof is for tree size {tree_size}, the checkpoint for {checkpoint.tree_size}")
    hashed = merkle.leaf_hash(entry.encode())
    if not merkle.verify_inclusion(hashed, leaf_index, tree_size, path, checkpoint.root_hash):
        return Verdict(
            False,
            f"NOT VERIFIED: entry {entry!r} is not leaf {leaf_index} of the signed tree of size {tree_size}",
        )
    return Verdict(
        True,
        f"VERIFIED: entry is leaf {leaf_index} of {checkpoint.origin} at size {tree_size}, signed by its key",
        {
            "origin": checkpoint.origin,
            "leaf_index": leaf_index,
            "tree_size": tree_size,
            "timestamp": checkpoint.timestamp,
        },
    )


def verify_consistency_bundle(
    older_text: str, newer_text: str, public_key: bytes, proof: dict[str, Any], *, key_name: str | None = None
) -> Verdict:
    """Does the newer signed checkpoint extend the older one (nothing removed or rewritten)?"""
    try:
        older = verify_checkpoint(older_text, public_key, key_name)
        newer = verify_checkpoint(newer_text, public_key, key_name)
        path = _hashes(proof.get("consistency_path"), "consistency_path")
        first = _int(proof.get("first", older.tree_size), "first")
        second = _int(proof.get("second", newer.tree_size), "second")
    except CheckpointInvalid as exc:
        return Verdict(False, str(exc))
    if older.origin != newer.origin:
        return Verdict(False, f"the checkpoints are of two logs: {older.origin} and {newer.origin}")
    if newer.tree_size < older.tree_size:
        return Verdict(
            False,
            f"NOT CONSISTENT: the newer checkpoint has {newer.tree_size} entries, fewer than the older "
            f"{older.tree_size} — the log was rolled back",
        )
    if (first, second) != (older.tree_size, newer.tree_size):
        return Verdict(
            False, f"the proof is for sizes {first}→{second}, the checkpoints for {older.tree_size}→{newer.tree_size}"
        )
    if not merkle.verify_consistency(older.tree_size, newer.tree_size, older.root_hash, newer.root_hash, path):
        return Verdict(
            False,
            f"NOT CONSISTENT: the tree of size {newer.tree_size} does not extend the tree of size {older.tree_size}",
        )
    return Verdict(
        True,
        f"CONSISTENT: {older.origin} at size {newer.tree_size} extends size {older.tree_size}",
        {"origin": older.origin, "first": older.tree_size, "second": newer.tree_size},
    )


def timestamp_text(timestamp: int | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
