"""Public HTTP endpoints of the tamper-evident log, under `/epcis/log/{tenant_slug}`.

Anyone may call them — consumers and auditors verify without an account. They reveal only hashes,
sizes and signed heads; an entry is itself an event hash. Limited per network address.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import consumers, tenancy
from zhongtai.core.web import DbSession, ReadSession, rate_limit
from zhongtai.trace import checkpoint as checkpoints
from zhongtai.trace import log
from zhongtai.trace.log_models import TraceCheckpoint

router = APIRouter(
    prefix="/epcis/log/{tenant_slug}",
    tags=["trace log"],
    dependencies=[Depends(rate_limit("trace-log", limit=300, period=60.0))],
)

CHECKPOINT_MEDIA_TYPE = "text/plain; charset=utf-8"
MAX_TREE_SIZE = 2**62


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


class CheckpointOut(BaseModel):
    origin: str
    tree_size: int
    root_hash: str = Field(description="base64 RFC 9162 root hash")
    timestamp: int | None = Field(description="signing time, Unix seconds (the checkpoint's extension line)")
    signed_at: datetime
    key_version: int
    checkpoint: str = Field(description="the C2SP signed-note checkpoint text")

    @classmethod
    def of(cls, row: TraceCheckpoint) -> CheckpointOut:
        parsed = checkpoints.parse_checkpoint(row.note)
        return cls(
            origin=parsed.origin,
            tree_size=row.tree_size,
            root_hash=_b64(row.root_hash),
            timestamp=parsed.timestamp,
            signed_at=row.signed_at,
            key_version=row.key_version,
            checkpoint=row.note,
        )


class CheckpointList(BaseModel):
    items: list[CheckpointOut]
    next_from_size: int | None = Field(description="pass as from_size for the next page; null at the end")


class PublicKeyOut(BaseModel):
    version: int
    key_name: str
    key_id: str = Field(description="hex of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]")
    public_key: str = Field(description="base64 of the 32-byte Ed25519 public key")
    verifier_key: str = Field(description="name+keyid+base64(0x01 ‖ key), as Go's note package reads it")
    created_at: datetime
    retired_at: datetime | None


class PublicKeysOut(BaseModel):
    current: PublicKeyOut
    keys: list[PublicKeyOut]


class InclusionProofOut(BaseModel):
    origin: str | None
    leaf_index: int
    tree_size: int
    entry: str | None = Field(description="the entry asked for, when asked by entry")
    leaf_hash: str = Field(description="base64 SHA-256(0x00 ‖ entry)")
    inclusion_path: list[str] = Field(description="base64 hashes, RFC 9162 §2.1.3 order")
    checkpoint: str | None = Field(description="the signed checkpoint of this tree size, when one was signed")


class ConsistencyProofOut(BaseModel):
    first: int
    second: int
    consistency_path: list[str] = Field(description="base64 hashes, RFC 9162 §2.1.4 order")


async def _tenant_id(session: AsyncSession, slug: str) -> uuid.UUID:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, slug)
    tenancy.scope_to_tenant(session, tenant.id)
    return tenant.id


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


@router.get(
    "/checkpoint",
    response_model=CheckpointOut,
    responses={200: {"content": {"text/plain": {}}, "description": "the checkpoint (text) or its fields (JSON)"}},
)
async def latest_checkpoint(tenant_slug: str, request: Request, session: ReadSession) -> Response:
    """The latest signed tree head: the checkpoint text, or JSON with `Accept: application/json`."""
    tenant_id = await _tenant_id(session, tenant_slug)
    row = await checkpoints.get_latest_checkpoint(session, tenant_id)
    if _wants_json(request):
        return JSONResponse(CheckpointOut.of(row).model_dump(mode="json"))
    return PlainTextResponse(row.note, media_type=CHECKPOINT_MEDIA_TYPE)


@router.get("/checkpoints", response_model=CheckpointList)
async def checkpoint_history(
    tenant_slug: str,
    session: DbSession,
    from_size: Annotated[int, Query(ge=0, le=MAX_TREE_SIZE, description="first tree size to list")] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CheckpointList:
    """Every signed tree head from `from_size` on, oldest first."""
    tenant_id = await _tenant_id(session, tenant_slug)
    rows = await checkpoints.list_checkpoints(session, tenant_id, from_size=from_size, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return CheckpointList(
        items=[CheckpointOut.of(row) for row in rows], next_from_size=rows[-1].tree_size + 1 if more else None
    )


@router.get("/public-key", response_model=PublicKeysOut)
async def public_key(tenant_slug: str, session: DbSession) -> PublicKeysOut:
    """The log's checkpoint keys, newest first; old keys still verify the heads they signed."""
    tenant_id = await _tenant_id(session, tenant_slug)
    keys = await checkpoints.public_keys(session, tenant_id)
    if not keys:
        raise checkpoints.NoSignedTreeHead()
    out = [
        PublicKeyOut(
            version=key.version,
            key_name=key.key_name,
            key_id=checkpoints.key_id(key.key_name, key.public_key).hex(),
            public_key=_b64(key.public_key),
            verifier_key=checkpoints.verifier_key(key.key_name, key.public_key),
            created_at=key.created_at,
            retired_at=key.retired_at,
        )
        for key in keys
    ]
    return PublicKeysOut(current=out[0], keys=out)


@router.get("/proof/inclusion", response_model=InclusionProofOut)
async def inclusion_proof(
    tenant_slug: str,
    session: ReadSession,
    leaf_index: Annotated[int | None, Query(ge=0, le=MAX_TREE_SIZE)] = None,
    entry: Annotated[str | None, Query(max_length=300, description="an event hash ID, ni:///sha-256;…")] = None,
    tree_size: Annotated[
        int | None, Query(ge=1, le=MAX_TREE_SIZE, description="default: the latest signed head's size")
    ] = None,
) -> InclusionProofOut:
    """Proof that a leaf (by index, or by its entry) is in the tree of a signed size."""
    tenant_id = await _tenant_id(session, tenant_slug)
    if (leaf_index is None) == (entry is None):
        raise log.BadProofRequest("Give either leaf_index or entry.")
    if entry is not None:
        leaf_index = await log.leaf_index_of(session, tenant_id, entry.encode())
        if leaf_index is None:
            raise log.UnknownLeaf(f"The entry {entry!r} is not in this log.")
    assert leaf_index is not None
    signed = None
    if tree_size is None:
        signed = await checkpoints.get_latest_checkpoint(session, tenant_id)
        tree_size = signed.tree_size
        if leaf_index >= tree_size:
            if leaf_index < await log.size(session, tenant_id):
                raise log.BadProofRequest(
                    f"Leaf {leaf_index} is newer than the latest signed head (size {tree_size}); heads are "
                    f"signed within {log.SIGN_INTERVAL_SECONDS} s of an append — ask again shortly.",
                    leaf_index=leaf_index,
                    tree_size=tree_size,
                )
            raise log.UnknownLeaf(f"The log has no leaf {leaf_index}.")
    else:
        signed = await checkpoints.checkpoint_at(session, tenant_id, tree_size)
    leaf, path = await log.inclusion_proof_with_leaf(session, tenant_id, leaf_index, tree_size)
    return InclusionProofOut(
        origin=checkpoints.parse_checkpoint(signed.note).origin if signed else None,
        leaf_index=leaf_index,
        tree_size=tree_size,
        entry=entry,
        leaf_hash=_b64(leaf),
        inclusion_path=[_b64(node) for node in path],
        checkpoint=signed.note if signed else None,
    )


@router.get("/proof/consistency", response_model=ConsistencyProofOut)
async def consistency_proof(
    tenant_slug: str,
    session: ReadSession,
    first: Annotated[int, Query(ge=0, le=MAX_TREE_SIZE)],
    second: Annotated[
        int | None, Query(ge=0, le=MAX_TREE_SIZE, description="default: the latest signed head's size")
    ] = None,
) -> ConsistencyProofOut:
    """Proof that the tree of size `second` extends the tree of size `first`."""
    tenant_id = await _tenant_id(session, tenant_slug)
    if second is None:
        second = (await checkpoints.get_latest_checkpoint(session, tenant_id)).tree_size
    path = await log.consistency_proof(session, tenant_id, first, second)
    return ConsistencyProofOut(first=first, second=second, consistency_path=[_b64(node) for node in path])


_DEMO_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Verify a trace proof</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script src="/static/trace-verify.js"></script></head>
<body><h1>Verify a trace proof</h1>
<p>Checks, in this browser, that an entry is in the brand's log under its signed checkpoint.</p>
<p id="verdict" data-state="pending">checking…</p>
<script src="/static/trace-verify-demo.js"></script></body></html>
"""


@router.get("/verify-demo", response_class=HTMLResponse, include_in_schema=False)
async def verify_demo(tenant_slug: str, session: DbSession) -> HTMLResponse:
    """A bare page that runs trace-verify.js on one proof (`?entry=…`, or `?leaf_index=…&claim=…`)."""
    await _tenant_id(session, tenant_slug)
    return HTMLResponse(_DEMO_PAGE)
