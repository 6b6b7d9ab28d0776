"""Lottery REST API: staff manage sessions; consumers enter and read receipts; anyone reads the
commitment and the draw data."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import select

from zhongtai.core import audit, tenancy
from zhongtai.core.consumers import get_active_tenant
from zhongtai.core.errors import RateLimited
from zhongtai.core.principals import Principal
from zhongtai.core.web import CurrentConsumer, DbSession, Origin, RuntimeDep, rate_limit, require
from zhongtai.lottery import jobs as _jobs  # noqa: F401 - registers the winner and forfeit jobs
from zhongtai.lottery import service
from zhongtai.lottery.models import SESSION_DRAFT, LotterySession, LotteryWin
from zhongtai.lottery.permissions import LOTTERY_READ, LOTTERY_WRITE
from zhongtai.lottery.schemas import (
    DrawRequest,
    EntryCreate,
    NearbyStoreOut,
    SessionCreate,
    SessionOut,
    StockOut,
    StockSet,
    StoreCreate,
    StoreOut,
    WinOut,
)

router = APIRouter(prefix="/api/v1", tags=["lottery"])

LotteryReader = Annotated[Principal, Depends(require(LOTTERY_READ))]
LotteryWriter = Annotated[Principal, Depends(require(LOTTERY_WRITE))]
ENTRIES_PER_MINUTE = 30
PublicLimit = Depends(rate_limit("lottery-public", limit=60, period=60.0))


# Staff.


@router.post("/lottery/stores", response_model=StoreOut, status_code=201)
async def create_store(body: StoreCreate, session: DbSession, actor: LotteryWriter, origin: Origin) -> StoreOut:
    store = await service.do_create_store(
        session,
        code=body.code,
        name=body.name,
        city=body.city,
        latitude=body.latitude,
        longitude=body.longitude,
        channel_store_id=body.channel_store_id,
    )
    await audit.record(
        session, actor, "lottery.store_create", target_type="lottery_store", target_id=store.id, origin=origin
    )
    return StoreOut.model_validate(store)


@router.get("/lottery/stores", response_model=list[StoreOut])
async def list_stores(session: DbSession, _: LotteryReader) -> list[StoreOut]:
    return [StoreOut.model_validate(s) for s in await service.list_stores(session)]


@router.post("/lottery/sessions", response_model=SessionOut, status_code=201)
async def create_session(
    body: SessionCreate, session: DbSession, actor: LotteryWriter, runtime: RuntimeDep, origin: Origin
) -> SessionOut:
    lottery = await service.do_create_session(
        session,
        runtime.crypto,
        title=body.title,
        opens_at=body.opens_at,
        closes_at=body.closes_at,
        payment_hours=body.payment_hours,
        beacon_source=body.beacon_source,
    )
    await audit.record(
        session, actor, "lottery.session_create", target_type="lottery_session", target_id=lottery.id, origin=origin
    )
    return SessionOut.model_validate(lottery)


@router.get("/lottery/sessions", response_model=list[SessionOut])
async def list_sessions(session: DbSession, _: LotteryReader) -> list[SessionOut]:
    return [SessionOut.model_validate(s) for s in await service.list_sessions(session)]


@router.get("/lottery/sessions/{session_id}", response_model=SessionOut)
async def get_session(session_id: uuid.UUID, session: DbSession, _: LotteryReader) -> SessionOut:
    return SessionOut.model_validate(await service.get_session(session, session_id))


async def _stock_out(session: DbSession, session_id: uuid.UUID) -> StockOut:
    counts = await service.entry_counts(session, session_id)
    return StockOut(
        items=[
            {
                "store_id": str(s.store_id),
                "product_id": str(s.product_id),
                "quantity": s.quantity,
                "price_fen": s.price_fen,
            }
            for s in await service.stock_of(session, session_id)
        ],
        entries=[
            {"store_id": str(store), "product_id": str(product), "entries": count}
            for (store, product), count in sorted(counts.items())
        ],
    )


@router.get("/lottery/sessions/{session_id}/stock", response_model=StockOut)
async def get_stock(session_id: uuid.UUID, session: DbSession, _: LotteryReader) -> StockOut:
    await service.get_session(session, session_id)
    return await _stock_out(session, session_id)


@router.put("/lottery/sessions/{session_id}/stock", response_model=StockOut)
async def set_stock(
    session_id: uuid.UUID, body: StockSet, session: DbSession, actor: LotteryWriter, origin: Origin
) -> StockOut:
    lottery = await service.get_session(session, session_id)
    items = [service.StockItem(i.store_id, i.product_id, i.quantity, i.price_fen) for i in body.items]
    await service.do_set_stock(session, lottery, items)
    await audit.record(
        session,
        actor,
        "lottery.stock_set",
        target_type="lottery_session",
        target_id=session_id,
        data={"lines": len(items)},
        origin=origin,
    )
    return await _stock_out(session, session_id)


async def _transition(session_id: uuid.UUID, session: DbSession, actor: Principal, origin: Any, verb: str) -> None:
    await audit.record(
        session, actor, f"lottery.{verb}", target_type="lottery_session", target_id=session_id, origin=origin
    )


@router.post("/lottery/sessions/{session_id}/commit", response_model=SessionOut)
async def commit_session(session_id: uuid.UUID, session: DbSession, actor: LotteryWriter, origin: Origin) -> SessionOut:
    """Publish the commitment (server seed hash, stock, algorithm) before the window opens."""
    lottery = await service.do_commit(session, await service.get_session(session, session_id))
    await _transition(session_id, session, actor, origin, "commit")
    return SessionOut.model_validate(lottery)


@router.post("/lottery/sessions/{session_id}/close", response_model=SessionOut)
async def close_session(session_id: uuid.UUID, session: DbSession, actor: LotteryWriter, origin: Origin) -> SessionOut:
    """Freeze the entries after the window and publish their Merkle root (idempotent)."""
    lottery = await service.do_close(session, await service.get_session(session, session_id))
    await _transition(session_id, session, actor, origin, "close")
    return SessionOut.model_validate(lottery)


@router.post("/lottery/sessions/{session_id}/draw", response_model=SessionOut)
async def draw_session(
    session_id: uuid.UUID,
    body: DrawRequest,
    session: DbSession,
    actor: LotteryWriter,
    runtime: RuntimeDep,
    origin: Origin,
) -> SessionOut:
    """Draw the winners and reveal the server seed (idempotent)."""
    lottery = await service.do_draw(
        session, runtime.crypto, await service.get_session(session, session_id), beacon=body.beacon
    )
    await _transition(session_id, session, actor, origin, "draw")
    return SessionOut.model_validate(lottery)


@router.get("/lottery/sessions/{session_id}/wins", response_model=list[WinOut])
async def list_wins(session_id: uuid.UUID, session: DbSession, _: LotteryReader) -> list[WinOut]:
    await service.get_session(session, session_id)
    return [WinOut.model_validate(w) for w in await service.wins_of(session, session_id)]


# Consumers.


@router.get("/consumer/lottery/sessions", response_model=list[SessionOut])
async def consumer_sessions(principal: CurrentConsumer, session: DbSession) -> list[SessionOut]:
    rows = await service.list_sessions(session)
    return [SessionOut.model_validate(s) for s in rows if s.status != SESSION_DRAFT]


@router.get("/consumer/lottery/sessions/{session_id}/stores", response_model=list[NearbyStoreOut])
async def consumer_stores(
    session_id: uuid.UUID,
    principal: CurrentConsumer,
    session: DbSession,
    latitude: Annotated[float | None, Query(ge=-90, le=90)] = None,
    longitude: Annotated[float | None, Query(ge=-180, le=180)] = None,
) -> list[NearbyStoreOut]:
    """Stores with stock in the session, nearest first when the location is given."""
    lottery = await service.get_session(session, session_id)
    if lottery.status == SESSION_DRAFT:
        return []
    nearby = await service.stores_for_session(session, session_id, latitude=latitude, longitude=longitude)
    return [
        NearbyStoreOut(
            **StoreOut.model_validate(n.store).model_dump(),
            distance_km=round(n.distance_km, 2) if n.distance_km is not None else None,
            product_ids=sorted(n.products),
        )
        for n in nearby
    ]


@router.post(
    "/consumer/lottery/sessions/{session_id}/entries",
    status_code=201,
    responses={200: {"description": "the same entry again (retry)"}},
)
async def enter(
    session_id: uuid.UUID,
    body: EntryCreate,
    principal: CurrentConsumer,
    session: DbSession,
    runtime: RuntimeDep,
    response: Response,
) -> dict[str, Any]:
    """Enter the session for one product at one store: once per product per session."""
    # Per member, not per address: members behind one carrier NAT must not starve each other.
    decision = await runtime.limiter.hit(f"rl:lottery-entry:{principal.id}", limit=ENTRIES_PER_MINUTE, period=60.0)
    if not decision.allowed:
        raise RateLimited(retry_after=decision.retry_after)
    entry, is_new = await service.do_enter(
        session,
        runtime.crypto,
        session_id=session_id,
        consumer_id=principal.id,
        product_id=body.product_id,
        store_id=body.store_id,
    )
    if not is_new:
        response.status_code = 200
    lottery = await service.get_session(session, session_id)
    return await service.receipt(session, lottery, entry)


@router.get("/consumer/lottery/entries")
async def my_entries(principal: CurrentConsumer, session: DbSession) -> list[dict[str, Any]]:
    from zhongtai.lottery.models import LotteryEntry

    entries = await session.scalars(
        select(LotteryEntry).where(LotteryEntry.consumer_id == principal.id).order_by(LotteryEntry.id.desc()).limit(50)
    )
    found = []
    for entry in entries:
        lottery = await service.get_session(session, entry.session_id)
        win = await session.scalar(select(LotteryWin).where(LotteryWin.entry_id == entry.id))
        found.append(
            {
                "entry_id": str(entry.id),
                "session_id": str(entry.session_id),
                "title": lottery.title,
                "product_id": str(entry.product_id),
                "store_id": str(entry.store_id),
                "result": service.result_of(lottery, entry, win),
                "excluded_reason": entry.excluded_reason,
            }
        )
    return found


@router.get("/consumer/lottery/entries/{entry_id}")
async def my_receipt(entry_id: uuid.UUID, principal: CurrentConsumer, session: DbSession) -> dict[str, Any]:
    """The receipt: entry id, leaf, inclusion proof once closed, exclusion reason, result."""
    entry = await service.get_entry(session, entry_id, consumer_id=principal.id)
    lottery = await service.get_session(session, entry.session_id)
    return await service.receipt(session, lottery, entry)


# Public: anyone may check the commitment and recompute the draw.


async def _public_session(session: DbSession, tenant_slug: str, session_id: uuid.UUID) -> LotterySession:
    tenancy.scope_all_tenants(session)
    tenant = await get_active_tenant(session, tenant_slug)
    tenancy.scope_to_tenant(session, tenant.id)
    return await service.get_session(session, session_id)


@router.get("/public/{tenant_slug}/lottery/{session_id}/commitment", dependencies=[PublicLimit])
async def public_commitment(tenant_slug: str, session_id: uuid.UUID, session: DbSession) -> dict[str, Any]:
    return await service.commitment(session, await _public_session(session, tenant_slug, session_id))


@router.get("/public/{tenant_slug}/lottery/{session_id}/draw", dependencies=[PublicLimit])
async def public_draw(tenant_slug: str, session_id: uuid.UUID, session: DbSession) -> dict[str, Any]:
    """The draw data: commitment, frozen entries (pseudonymous), root, beacon, revealed seed, winners."""
    return await service.draw_data(session, await _public_session(session, tenant_slug, session_id))
