"""Channel scans: a dealer receives goods from the brand and ships them to a store, the store receives
them, opens a case and sells; each scan moves custody and records EPCIS events.

One scan names up to `MAX_CODES` codes (typed, or read by a camera: Digital Link URIs, short links,
serials, SSCCs). A case or pallet stands for every item packed inside it. A scan is all or nothing:
every code and every item inside it must pass, or the scan is refused (409 `scan_refused`) with each
bad code and its reason in `data.refused`.

How a step stays exactly-once:
- `channel_scan_items` is unique per (code, step), so no item takes one step twice;
- on PostgreSQL the scanned codes and the items inside them are locked (`FOR UPDATE`, in id order)
  before their custody is read, so two concurrent scans of the same case serialise and the second
  sees the first; SQLite's `BEGIN IMMEDIATE` serialises writers anyway;
- a step the same partner already took answers as it did then (`replayed: true`, the first scan's
  answer), so does a retry with the same `Idempotency-Key`.

Every item that passes a step that can earn rewards (dealer_receive, store_receive, case_open, sale)
is published as a `core.ItemEvent` in the same transaction; the subscribers' answers
are returned under `rewards` (opaque to the channel).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi.encoders import jsonable_encoder
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.channel import diversion
from zhongtai.channel.actor import Actor
from zhongtai.channel.models import PARTNER_DEALER, PARTNER_GUIDE, PARTNER_STORE, Dealer, Store
from zhongtai.channel.partners import get_partner
from zhongtai.channel.scan_models import (
    CASE_OPEN,
    DEALER_RECEIVE,
    HOLDER_DEALER,
    HOLDER_SOLD,
    HOLDER_STORE,
    HOLDER_TRANSIT,
    SALE,
    SHIP,
    STORE_RECEIVE,
    ChannelScan,
    ChannelScanItem,
    Custody,
)
from zhongtai.codes import custody as code_custody
from zhongtai.codes import moves
from zhongtai.codes import queries as codes_queries
from zhongtai.codes.events import ItemEvent
from zhongtai.codes.service import TRACE_TOPIC
from zhongtai.codes.states import (
    CASE,
    DECOMMISSIONED,
    GENERATED,
    IN_STORE,
    ITEM,
    LEVEL_NAMES,
    OPENED,
    RECEIVED,
    SHIPPED,
    SOLD,
    VOIDED,
)
from zhongtai.core import jobs
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.domain_events import publish
from zhongtai.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from zhongtai.core.principals import Principal, PrincipalKind

MAX_CODES = 200
CHUNK = 1000

# Who may take which step.
ROLES_FOR: dict[str, tuple[str, ...]] = {
    DEALER_RECEIVE: (PARTNER_DEALER,),
    SHIP: (PARTNER_DEALER,),
    STORE_RECEIVE: (PARTNER_STORE, PARTNER_GUIDE),
    CASE_OPEN: (PARTNER_STORE, PARTNER_GUIDE),
    SALE: (PARTNER_STORE, PARTNER_GUIDE),
}
# The state a scanned (outermost) code takes.
STATE_AFTER = {DEALER_RECEIVE: RECEIVED, SHIP: SHIPPED, STORE_RECEIVE: IN_STORE, SALE: SOLD}
# EPCIS business step and disposition of each step.
BIZ = {
    DEALER_RECEIVE: ("receiving", "in_progress"),
    SHIP: ("shipping", "in_transit"),
    STORE_RECEIVE: ("receiving", "sellable_accessible"),
    SALE: ("retail_selling", "retail_sold"),
}
REWARD_KIND = {DEALER_RECEIVE: "dealer_receive", STORE_RECEIVE: "store_receive", CASE_OPEN: "case_open", SALE: "sale"}


class ScanRefused(Conflict):
    """One or more codes may not take this step; `data.refused` lists each with its reason."""

    code = "scan_refused"


class ScanNotAllowed(PermissionDenied):
    code = "scan_not_allowed"


class InvalidScan(ValidationFailed):
    code = "invalid_scan"


class ScanRaced(Conflict):
    code = "scan_raced"
    default_message = "Another scan changed these codes at the same moment; scan again."


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was used for another scan."


class ScanNotFound(NotFound):
    code = "scan_not_found"
    default_message = "No such scan."


@dataclass(frozen=True)
class ScanRequest:
    action: str
    codes: Sequence[str]
    to_store_id: uuid.UUID | None = None
    latitude: float | None = None
    longitude: float | None = None
    accuracy_m: float | None = None
    device_id: str | None = None
    idempotency_key: str | None = None


@dataclass
class Refusals:
    problems: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0

    def add(self, code: str, reason: str, message: str, inside: str | None = None) -> None:
        self.count += 1
        if len(self.problems) < 100:
            problem: dict[str, Any] = {"code": code, "reason": reason, "message": message}
            if inside is not None:
                problem["inside"] = inside
            self.problems.append(problem)

    def raise_if_any(self) -> None:
        if not self.problems:
            return
        first = self.problems[0]
        where = f" (inside {first['inside']})" if first.get("inside") else ""
        more = f" (and {self.count - 1} more)" if self.count > 1 else ""
        raise ScanRefused(
            f"Scan refused: {first['code']}{where}: {first['message']}{more}",
            refused=self.problems,
            refused_count=self.count,
        )


@dataclass
class _Item:
    code: moves.CodeRow
    top: moves.CodeRow  # the scanned code it is in (itself when an item was scanned)
    product_id: uuid.UUID | None
    custody: Custody | None = None


async def actor_of(session: AsyncSession, principal: Principal) -> Actor:
    if principal.kind is not PrincipalKind.PARTNER:
        raise PermissionDenied("This needs a partner sign-in.")
    account = await get_partner(session, principal.id)
    if not account.is_active:
        raise PermissionDenied("This partner account is disabled.")
    store = None
    if account.store_id is not None:
        store = await session.scalar(select(Store).where(Store.id == account.store_id))
        if store is None:
            raise PermissionDenied("This partner account is not linked to a store.")
        dealer_id = store.dealer_id
    elif account.dealer_id is not None:
        dealer_id = account.dealer_id
    else:
        raise PermissionDenied("This partner account is not linked to a dealer or a store.")
    dealer = await session.scalar(select(Dealer).where(Dealer.id == dealer_id))
    if dealer is None:
        raise PermissionDenied("This partner account is not linked to a dealer.")
    return Actor(account, dealer, store)


def _check_request(actor: Actor, request: ScanRequest) -> None:
    if request.action not in ROLES_FOR:
        raise InvalidScan(f"Unknown scan action {request.action!r}.", field="action")
    allowed = ROLES_FOR[request.action]
    if actor.role not in allowed:
        raise ScanNotAllowed(
            f"A {actor.role} account cannot record '{request.action}'; that needs a {' or '.join(allowed)} account.",
            action=request.action,
            role=actor.role,
        )
    texts = [t for t in request.codes if t and t.strip()]
    if not texts:
        raise InvalidScan("Scan or type at least one code.", field="codes")
    if len(request.codes) > MAX_CODES:
        raise InvalidScan(f"At most {MAX_CODES} codes per scan.", field="codes")
    if (request.latitude is None) != (request.longitude is None):
        raise InvalidScan("Send both latitude and longitude, or neither.", field="latitude")
    if (
        request.latitude is not None
        and request.longitude is not None
        and not (-90 <= request.latitude <= 90 and -180 <= request.longitude <= 180)
    ):
        raise InvalidScan("Latitude is −90…90 and longitude −180…180 (WGS-84 degrees).", field="latitude")
    if actor.dealer.is_archived:
        raise ScanNotAllowed("Your dealer is archived; ask the brand to unarchive it.")
    if actor.store is not None and actor.store.is_archived:
        raise ScanNotAllowed("Your store is archived; ask the brand to unarchive it.")
    if request.action == SHIP and request.to_store_id is None:
        raise InvalidScan("Choose the store you ship to.", field="to_store_id")


async def _destination(session: AsyncSession, actor: Actor, request: ScanRequest) -> Store | None:
    if request.action != SHIP:
        return None
    store = await session.scalar(select(Store).where(Store.id == request.to_store_id))
    if store is None:
        raise InvalidScan("No such store.", field="to_store_id")
    if store.is_archived:
        raise InvalidScan(f"Store {store.code} is archived.", field="to_store_id")
    return store


async def _replay(session: AsyncSession, actor: Actor, request: ScanRequest) -> dict[str, Any] | None:
    if not request.idempotency_key:
        return None
    scan = await session.scalar(
        select(ChannelScan).where(
            ChannelScan.partner_account_id == actor.account.id,
            ChannelScan.idempotency_key == request.idempotency_key,
        )
    )
    if scan is None:
        return None
    if scan.action != request.action:
        raise IdempotencyKeyReused()
    return {**scan.response, "replayed": True}


async def _expand(
    session: AsyncSession, tops: list[moves.CodeRow]
) -> tuple[dict[int, list[moves.CodeRow]], list[moves.CodeRow]]:
    """The items inside each scanned code (itself for an item) and every container in between."""
    inside: dict[int, list[moves.CodeRow]] = {}
    containers: list[moves.CodeRow] = []
    owner: dict[int, int] = {}
    frontier = []
    for top in tops:
        if top.level == ITEM:
            inside[top.id] = [top]
        else:
            inside[top.id] = []
            owner[top.id] = top.id
            frontier.append(top.id)
    for _ in range(2):  # pallet → cases → items
        if not frontier:
            break
        next_frontier = []
        for child in await moves.codes_inside(session, frontier):
            assert child.parent_id is not None
            top_id = owner[child.parent_id]
            if child.level == ITEM:
                inside[top_id].append(child)
            else:
                containers.append(child)
                owner[child.id] = top_id
                next_frontier.append(child.id)
        frontier = next_frontier
    return inside, containers


async def _custody_of(session: AsyncSession, ids: list[int]) -> dict[int, Custody]:
    found: dict[int, Custody] = {}
    for start in range(0, len(ids), CHUNK):
        rows = await session.scalars(
            select(Custody)
            .where(Custody.code_id.in_(ids[start : start + CHUNK]))
            .execution_options(populate_existing=True)
        )
        found.update({c.code_id: c for c in rows})
    return found


async def _done_steps(session: AsyncSession, ids: list[int], action: str) -> dict[int, ChannelScanItem]:
    found: dict[int, ChannelScanItem] = {}
    for start in range(0, len(ids), CHUNK):
        rows = await session.scalars(
            select(ChannelScanItem).where(
                ChannelScanItem.code_id.in_(ids[start : start + CHUNK]), ChannelScanItem.action == action
            )
        )
        found.update({r.code_id: r for r in rows})
    return found


_BAD_STATES = {
    GENERATED: ("not_commissioned", "This code was never put into circulation."),
    VOIDED: ("voided", "This code is voided."),
    DECOMMISSIONED: ("decommissioned", "This code is decommissioned."),
}


_TAKEN_BY_OTHERS = {
    DEALER_RECEIVE: ("in_channel", "This item was already received by another dealer."),
    SHIP: ("already_shipped", "This item was already shipped to another store."),
    STORE_RECEIVE: ("at_another_store", "This item was received by another store."),
    CASE_OPEN: ("opened_elsewhere", "This item was taken out of its case at another store."),
    SALE: ("sold", "This item is already sold."),
}


def _same_party(action: str, actor: Actor, destination: Store | None, done: ChannelScanItem) -> bool:
    if action == DEALER_RECEIVE:
        return done.dealer_id == actor.dealer.id
    if action == SHIP:
        return done.dealer_id == actor.dealer.id and destination is not None and done.store_id == destination.id
    return actor.store is not None and done.store_id == actor.store.id


def _judge(
    action: str, actor: Actor, destination: Store | None, item: _Item, done: ChannelScanItem | None
) -> tuple[str, str] | bool | None:
    """Why an item may not take the step (reason, message); True when this partner already took it
    (a no-op); None when it may."""
    custody = item.custody
    if done is not None:
        if _same_party(action, actor, destination, done):
            return True
        return _TAKEN_BY_OTHERS[action]
    if item.code.state in _BAD_STATES:
        return _BAD_STATES[item.code.state]
    if action == DEALER_RECEIVE:
        if custody is None:
            return None
        return "in_channel", "This item was already received into the channel."
    if custody is None:
        if action == SHIP:
            return "not_received", "Your dealer has not received this item yet; scan it in first."
        return "not_in_channel", "No dealer has received this item yet."
    if custody.holder == HOLDER_SOLD:
        if action == SALE and custody.store_id == (actor.store.id if actor.store else None):
            return True
        return "sold", "This item is already sold."
    if action == SHIP:
        assert destination is not None
        if custody.dealer_id != actor.dealer.id:
            return "not_yours", "This item is held by another dealer."
        if custody.holder == HOLDER_DEALER:
            return None
        if custody.holder == HOLDER_TRANSIT and custody.store_id == destination.id:
            return True
        return "already_shipped", "This item was already shipped to another store."
    assert actor.store is not None
    store = actor.store
    if action == STORE_RECEIVE:
        if custody.holder == HOLDER_TRANSIT and custody.store_id == store.id:
            return None
        if custody.holder == HOLDER_DEALER and custody.dealer_id == store.dealer_id:
            return None  # the supplying dealer hands it over without a shipping scan
        if custody.holder == HOLDER_STORE and custody.store_id == store.id:
            return True
        if custody.holder == HOLDER_DEALER:
            return "not_shipped_to_you", "This item was not shipped to your store; its dealer still holds it."
        if custody.holder == HOLDER_TRANSIT:
            return "shipped_elsewhere", "This item was shipped to another store."
        return "at_another_store", "This item was received by another store."
    if custody.holder != HOLDER_STORE or custody.store_id != store.id:
        if custody.holder == HOLDER_TRANSIT and custody.store_id == store.id:
            return "not_received", "Receive this item at your store first."
        return "not_at_your_store", "This item is not in your store."
    if action == CASE_OPEN:
        return None  # an opened case holds nothing any more: a repeated open is judged by the caller
    return None  # SALE


async def do_scan(session: AsyncSession, principal: Principal, crypto: Crypto, request: ScanRequest) -> dict[str, Any]:
    actor = await actor_of(session, principal)
    _check_request(actor, request)
    replay = await _replay(session, actor, request)
    if replay is not None:
        return replay
    destination = await _destination(session, actor, request)
    refusals = Refusals()
    tops = await _scanned_codes(session, request, refusals)
    tops, inside = await _lock_scanned(session, tops, refusals)
    sorted_ = await _sort_items(session, actor, request, destination, tops, inside, refusals)
    refusals.raise_if_any()
    if not sorted_.items:
        return await _already_done(
            session,
            actor,
            request,
            [sorted_.done[i.code.id] for i in sorted_.noop],
            sorted_.opened_before,
            set(sorted_.emptied.values()),
        )
    try:
        return await _apply(
            session, crypto, actor, request, destination, tops, inside, sorted_.items, len(sorted_.noop)
        )
    except IntegrityError as exc:  # the unique (code, step) index: only when the locks were bypassed
        raise ScanRaced() from exc


async def _scanned_codes(session: AsyncSession, request: ScanRequest, refusals: Refusals) -> list[moves.CodeRow]:
    """The codes the scan names, each once in the order first named; refused unless every text resolves
    (and, to open a case, every code is a case)."""
    texts = [t.strip() for t in request.codes if t and t.strip()]
    problems = code_custody.Refusals()
    by_text = await code_custody.resolve_map(session, texts, problems)
    for problem in problems.problems:
        refusals.add(problem["code"], problem["reason"], problem["message"])
    refusals.raise_if_any()
    tops: list[moves.CodeRow] = []
    for text in texts:
        code = by_text[text]
        if all(code.id != t.id for t in tops):
            tops.append(code)
    if request.action == CASE_OPEN:
        for code in tops:
            if code.level != CASE:
                refusals.add(code.serial, "not_a_case", f"This is a {LEVEL_NAMES[code.level]}; open a case.")
        refusals.raise_if_any()
    return tops


async def _lock_scanned(
    session: AsyncSession, tops: list[moves.CodeRow], refusals: Refusals
) -> tuple[list[moves.CodeRow], dict[int, list[moves.CodeRow]]]:
    """Lock what was scanned and what is inside it in one global order, then read everything afresh:
    the scanned codes as they are now and the items inside each (refused when a code is listed inside
    another one scanned too)."""
    inside, containers = await _expand(session, tops)
    locked = [*tops, *containers, *(i for items in inside.values() for i in items)]
    await moves.lock_codes(session, locked)
    fresh = await moves.fresh_codes(session, [c.id for c in tops])
    tops = [fresh[c.id] for c in tops]
    top_ids = {c.id for c in tops}
    for code in tops:
        if code.parent_id is not None and code.parent_id in top_ids:
            holder = next(t for t in tops if t.id == code.parent_id)
            refusals.add(code.serial, "listed_twice", f"This code is inside {holder.serial}, which is scanned too.")
    refusals.raise_if_any()
    inside, containers = await _expand(session, tops)
    held = {c.id for c in locked}
    late = [c for c in [*containers, *(i for items in inside.values() for i in items)] if c.id not in held]
    if late:  # packed in meanwhile (rare): lock those too
        await moves.lock_codes(session, late)
    return tops, inside


@dataclass
class _Sorted:
    """The scanned items sorted by verdict."""

    done: dict[int, ChannelScanItem]  # item → its line of this step, when one exists
    items: list[_Item] = field(default_factory=list)  # to take the step
    noop: list[_Item] = field(default_factory=list)  # this partner already took it
    opened_before: dict[int, ChannelScanItem] = field(default_factory=dict)  # a case this store opened before
    emptied: dict[int, int] = field(default_factory=dict)  # an emptied container → the scan that took its contents


async def _sort_items(
    session: AsyncSession,
    actor: Actor,
    request: ScanRequest,
    destination: Store | None,
    tops: list[moves.CodeRow],
    inside: dict[int, list[moves.CodeRow]],
    refusals: Refusals,
) -> _Sorted:
    """Judge every scanned code and every item inside it; what may not take the step goes to `refusals`."""
    top_ids = {c.id for c in tops}
    all_item_ids = [i.id for items in inside.values() for i in items]
    batches = await code_custody.batches_covering(session, [*top_ids, *all_item_ids]) if tops else []
    custodies = await _custody_of(session, all_item_ids)
    sorted_ = _Sorted(done=await _done_steps(session, all_item_ids, request.action))
    for top in tops:
        if top.state in _BAD_STATES:
            refusals.add(top.serial, *_BAD_STATES[top.state])
            continue
        if not inside[top.id]:
            await _judge_empty(session, actor, request.action, destination, top, sorted_, refusals)
            continue
        for code in inside[top.id]:
            batch = code_custody.batch_for(batches, code.id)
            item = _Item(code, top, batch.product_id if batch else None, custodies.get(code.id))
            verdict = _judge(request.action, actor, destination, item, sorted_.done.get(code.id))
            if verdict is True:
                sorted_.noop.append(item)
            elif verdict is None or verdict is False:
                sorted_.items.append(item)
            else:
                reason, message = verdict
                refusals.add(code.serial, reason, message, inside=top.serial if top.id != code.id else None)
    return sorted_


async def _judge_empty(
    session: AsyncSession,
    actor: Actor,
    action: str,
    destination: Store | None,
    top: moves.CodeRow,
    sorted_: _Sorted,
    refusals: Refusals,
) -> None:
    """A scanned case or pallet that holds nothing: a case this store opened before, or one whose contents
    took this very step scanned one by one, is the same step again; anything else is refused."""
    if action == CASE_OPEN:
        earlier = await session.scalar(
            select(ChannelScanItem)
            .where(ChannelScanItem.action == CASE_OPEN, ChannelScanItem.parent_code_id == top.id)
            .limit(1)
        )
        if earlier is not None and actor.store is not None and earlier.store_id == actor.store.id:
            sorted_.opened_before[top.id] = earlier
            return
        if earlier is not None:
            refusals.add(top.serial, "opened_elsewhere", "This case was opened at another store.")
            return
    emptied_by = await _emptied_by_same_step(session, actor, action, destination, top)
    if emptied_by is not None:  # its contents took this very step, scanned one by one
        sorted_.emptied[top.id] = emptied_by
        return
    refusals.add(top.serial, "empty", f"This {LEVEL_NAMES[top.level]} holds no items.")


async def _emptied_by_same_step(
    session: AsyncSession, actor: Actor, action: str, destination: Store | None, container: moves.CodeRow
) -> int | None:
    """The scan, if any, in which this partner took `action` for what a now empty case or pallet held
    — its cases or bottles were scanned one by one and so unpacked from it. Scanning the container
    afterwards (or at the same moment, from another phone) is then the same step again, not an error."""
    unpacked = await codes_queries.unpack_data(session, container.id)
    scan_ids = {int(d["channel_scan"]) for d in unpacked if d.get("channel_scan")}
    if not scan_ids:
        return None
    scans = await session.scalars(
        select(ChannelScan).where(ChannelScan.id.in_(scan_ids), ChannelScan.action == action).order_by(ChannelScan.id)
    )
    for scan in scans:
        if action == DEALER_RECEIVE and scan.dealer_id == actor.dealer.id:
            return scan.id
        shipped_here = destination is not None and scan.to_store_id == destination.id
        if action == SHIP and shipped_here and scan.dealer_id == actor.dealer.id:
            return scan.id
        if action in (STORE_RECEIVE, SALE) and actor.store is not None and scan.store_id == actor.store.id:
            return scan.id
    return None


async def _already_done(
    session: AsyncSession,
    actor: Actor,
    request: ScanRequest,
    steps: list[ChannelScanItem],
    opened: dict[int, ChannelScanItem],
    emptied_by: set[int] | None = None,
) -> dict[str, Any]:
    """Everything scanned already took this step by this partner: the first scan's answer again."""
    scan_ids = {s.scan_id for s in steps} | {s.scan_id for s in opened.values()} | (emptied_by or set())
    if not scan_ids:  # pragma: no cover - the caller has refused or found something
        raise ScanNotFound()
    latest = await session.scalar(select(ChannelScan).where(ChannelScan.id == max(scan_ids)))
    if latest is None:  # pragma: no cover - a step row always has its scan
        raise ScanNotFound()
    return {**latest.response, "replayed": True}


def location_uri(kind: str, code: str) -> str:
    """The EPCIS location of a dealer's warehouse or a store (the brand's own identifiers)."""
    return f"urn:zhongtai:{kind}:{code}"


def _places(action: str, actor: Actor, destination: Store | None) -> dict[str, Any]:
    dealer = location_uri("dealer", actor.dealer.code)
    store = location_uri("store", actor.store.code) if actor.store else None
    if action == DEALER_RECEIVE:
        return {"biz_location": dealer, "destinations": [{"type": "location", "id": dealer}]}
    if action == SHIP:
        assert destination is not None
        return {
            "biz_location": dealer,
            "sources": [{"type": "location", "id": dealer}],
            "destinations": [{"type": "location", "id": location_uri("store", destination.code)}],
        }
    if action == STORE_RECEIVE:
        return {"biz_location": store, "destinations": [{"type": "location", "id": store}]}
    return {"biz_location": store}


def _record(
    session: AsyncSession,
    actor: Actor,
    when: datetime,
    *,
    kind: str,
    action: str,
    biz_step: str,
    disposition: str | None,
    code_ids: list[int],
    parent_id: int | None = None,
    product_id: uuid.UUID | None = None,
    data: dict[str, Any],
) -> moves.CodeStepRow:
    return moves.record_step(
        session,
        tenant_id=actor.account.tenant_id,
        when=when,
        kind=kind,
        action=action,
        biz_step=biz_step,
        disposition=disposition,
        code_ids=code_ids,
        parent_id=parent_id,
        product_id=product_id,
        actor_kind="partner",
        actor_label=actor.label,
        data=data,
    )


async def _set(session: AsyncSession, model: Any, column: Any, ids: list[int], values: dict[str, Any]) -> None:
    for start in range(0, len(ids), CHUNK):
        await session.execute(
            update(model)
            .where(column.in_(ids[start : start + CHUNK]))
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _opaque(value: Any) -> Any:
    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return str(value)


async def _apply(
    session: AsyncSession,
    crypto: Crypto,
    actor: Actor,
    request: ScanRequest,
    destination: Store | None,
    tops: list[moves.CodeRow],
    inside: dict[int, list[moves.CodeRow]],
    items: list[_Item],
    already: int,
) -> dict[str, Any]:
    """Record the scan: its row, the unpacking of codes taken out of containers, the step lines,
    custody, code states and EPCIS events; then the diversion checks and rewards, and the answer."""
    now = utcnow()
    action = request.action
    device_hash = crypto.lookup_hash(request.device_id, purpose="channel.device")[:32] if request.device_id else None
    scan = await _new_scan(session, actor, request, destination, tops, items, device_hash, now)
    step = _Step(session, actor, scan, now, _places(action, actor, destination))
    moving_tops = {i.top.id for i in items}
    await _detach(step, tops, moving_tops)
    product_ids = {i.product_id for i in items}
    product_id = next(iter(product_ids)) if len(product_ids) == 1 else None
    tops_moving = [t.id for t in tops if t.id in moving_tops]
    # A store receiving straight from its dealer: the dealer's shipping is recorded too.
    handed = [i for i in items if action == STORE_RECEIVE and i.custody and i.custody.holder == HOLDER_DEALER]
    if handed:
        await _hand_over(step, handed, product_id)
    await _insert_step_lines(session, actor, scan, action, destination, items, now)
    await _move_custody(step, action, destination, items, handed)
    await _set_states(step, action, tops, tops_moving, items, product_id)
    await session.flush()
    if action == DEALER_RECEIVE:
        await diversion.ensure_sweep(session, scan.tenant_id)  # consumer checks of these goods from now on
    await jobs.enqueue_many(
        session, TRACE_TOPIC, [({"code_event_id": e.id}, f"{TRACE_TOPIC}:{e.id}") for e in step.events]
    )
    alerts = await diversion.check_scan(
        session, scan, actor, items=[(i.code, i.top, i.product_id, i.custody) for i in items]
    )
    alerted = {alert.dealer_id: alert.id for alert in alerts}
    rewards = await _publish(session, actor, request, scan, items, device_hash, alerted)
    response = _response(scan, action, now, tops, items, already, destination, rewards)
    scan.response = response  # diversion alerts are for the brand, never shown to the partner
    scan.item_count = len(items)
    scan.alert_count = len(alerts)
    await session.flush()
    return response


@dataclass
class _Step:
    """What every write of one scan shares, and the EPCIS events it records (in order)."""

    session: AsyncSession
    actor: Actor
    scan: ChannelScan
    now: datetime
    places: dict[str, Any]
    events: list[moves.CodeStepRow] = field(default_factory=list)

    async def record(self, **kwargs: Any) -> None:
        self.events.append(_record(self.session, self.actor, self.now, **kwargs))


async def _new_scan(
    session: AsyncSession,
    actor: Actor,
    request: ScanRequest,
    destination: Store | None,
    tops: list[moves.CodeRow],
    items: list[_Item],
    device_hash: str | None,
    now: datetime,
) -> ChannelScan:
    """The scan's row, flushed so its id can be referenced."""
    store = actor.store
    scan = ChannelScan(
        tenant_id=actor.account.tenant_id,
        action=request.action,
        partner_account_id=actor.account.id,
        role=actor.role,
        dealer_id=actor.dealer.id,
        store_id=store.id if store else None,
        guide_id=actor.guide_id,
        to_store_id=destination.id if destination else None,
        codes=[c.serial for c in tops][:100],
        code_count=len(tops),
        item_count=len(items),
        latitude=request.latitude,
        longitude=request.longitude,
        accuracy_m=request.accuracy_m,
        device_hash=device_hash,
        idempotency_key=request.idempotency_key,
        occurred_at=now,
        response={},
    )
    session.add(scan)
    await session.flush()
    return scan


async def _detach(step: _Step, tops: list[moves.CodeRow], moving_tops: set[int]) -> None:
    """A code taken out of a container that stays behind is unpacked from it first."""
    detached: dict[int, list[int]] = {}
    for top in tops:
        if top.parent_id is not None and top.id in moving_tops:
            detached.setdefault(top.parent_id, []).append(top.id)
    for parent_id, child_ids in detached.items():
        await moves.set_codes(step.session, child_ids, parent_id=None, changed_at=step.now)
        await step.record(
            kind="unpack",
            action="DELETE",
            biz_step="unpacking",
            disposition="in_progress",
            code_ids=child_ids,
            parent_id=parent_id,
            data={**step.places, "channel_scan": step.scan.id},
        )


async def _hand_over(step: _Step, handed: list[_Item], product_id: uuid.UUID | None) -> None:
    """A store receiving straight from its supplying dealer: the dealer's shipping lines and event."""
    actor = step.actor
    store = actor.store
    assert store is not None
    await _insert_lines(
        step.session, step.scan, SHIP, handed, dealer_of=lambda i: store.dealer_id, store_id=store.id, now=step.now
    )
    await step.record(
        kind="ship",
        action="OBSERVE",
        biz_step="shipping",
        disposition="in_transit",
        code_ids=sorted({i.top.id for i in handed}),
        product_id=product_id,
        data={
            "biz_location": location_uri("dealer", actor.dealer.code),
            "sources": [{"type": "location", "id": location_uri("dealer", actor.dealer.code)}],
            "destinations": [{"type": "location", "id": location_uri("store", store.code)}],
            "channel_scan": step.scan.id,
            "handed_over": True,
        },
    )


async def _insert_step_lines(
    session: AsyncSession,
    actor: Actor,
    scan: ChannelScan,
    action: str,
    destination: Store | None,
    items: list[_Item],
    now: datetime,
) -> None:
    """One `channel_scan_items` line per item taking this step (unique per code and step)."""
    store = actor.store
    await _insert_lines(
        session,
        scan,
        action,
        items,
        dealer_of=lambda i: (
            actor.dealer.id if action in (DEALER_RECEIVE, SHIP) or i.custody is None else i.custody.dealer_id
        ),
        store_id=destination.id if destination else (store.id if store else None),
        guide_id=actor.guide_id if action in (CASE_OPEN, SALE) else None,
        now=now,
    )


async def _move_custody(
    step: _Step, action: str, destination: Store | None, items: list[_Item], handed: list[_Item]
) -> None:
    """Who holds each item after the step: a new custody row on a dealer's receipt, updated otherwise
    (opening a case leaves custody as it is)."""
    session, actor, scan, now = step.session, step.actor, step.scan, step.now
    store = actor.store
    ids = [i.code.id for i in items]
    if action == DEALER_RECEIVE:
        rows = [
            {
                "code_id": i.code.id,
                "tenant_id": actor.account.tenant_id,
                "product_id": i.product_id,
                "lot_id": i.code.lot_id,
                "dealer_id": actor.dealer.id,
                "holder": HOLDER_DEALER,
                "store_id": None,
                "guide_id": None,
                "received_at": now,
                "shipped_at": None,
                "updated_at": now,
                "last_scan_id": scan.id,
            }
            for i in items
        ]
        for start in range(0, len(rows), CHUNK):
            await session.execute(insert(Custody), rows[start : start + CHUNK])
    elif action == SHIP:
        assert destination is not None
        await _set(
            session,
            Custody,
            Custody.code_id,
            ids,
            {
                "holder": HOLDER_TRANSIT,
                "store_id": destination.id,
                "shipped_at": now,
                "updated_at": now,
                "last_scan_id": scan.id,
            },
        )
    elif action == STORE_RECEIVE:
        assert store is not None
        values = {"holder": HOLDER_STORE, "store_id": store.id, "updated_at": now, "last_scan_id": scan.id}
        await _set(session, Custody, Custody.code_id, ids, values)
        if handed:
            await _set(session, Custody, Custody.code_id, [i.code.id for i in handed], {"shipped_at": now})
    elif action == SALE:
        values = {"holder": HOLDER_SOLD, "guide_id": actor.guide_id, "updated_at": now, "last_scan_id": scan.id}
        await _set(session, Custody, Custody.code_id, ids, values)


async def _set_states(
    step: _Step,
    action: str,
    tops: list[moves.CodeRow],
    tops_moving: list[int],
    items: list[_Item],
    product_id: uuid.UUID | None,
) -> None:
    """moves.CodeRow states and the step's EPCIS event: the scanned codes take the step's state; sold items are
    sold; an opened case is empty (one unpack event per case)."""
    session, now = step.session, step.now
    ids = [i.code.id for i in items]
    if action == CASE_OPEN:
        await moves.set_codes(session, ids, parent_id=None, state=IN_STORE, changed_at=now)
        await moves.set_codes(session, tops_moving, state=OPENED, changed_at=now)
        moving = set(tops_moving)
        for top in tops:
            if top.id not in moving:
                continue
            await step.record(
                kind="unpack",
                action="DELETE",
                biz_step="unpacking",
                disposition="sellable_accessible",
                code_ids=[i.code.id for i in items if i.top.id == top.id],
                parent_id=top.id,
                product_id=product_id,
                data={**step.places, "channel_scan": step.scan.id, "case_open": True},
            )
        return
    await moves.set_codes(session, tops_moving, state=STATE_AFTER[action], changed_at=now)
    if action == SALE:
        await moves.set_codes(session, ids, state=SOLD, changed_at=now)
    biz_step, disposition = BIZ[action]
    await step.record(
        kind={DEALER_RECEIVE: "receive", SHIP: "ship", STORE_RECEIVE: "receive", SALE: "sell"}[action],
        action="OBSERVE",
        biz_step=biz_step,
        disposition=disposition,
        code_ids=tops_moving,
        product_id=product_id,
        data={**step.places, "channel_scan": step.scan.id},
    )


def _response(
    scan: ChannelScan,
    action: str,
    now: datetime,
    tops: list[moves.CodeRow],
    items: list[_Item],
    already: int,
    destination: Store | None,
    rewards: list[dict[str, Any]],
) -> dict[str, Any]:
    """The answer to the partner (stored on the scan for replays)."""
    return {
        "scan_id": scan.id,
        "action": action,
        "occurred_at": now.isoformat(),
        "accepted": [
            {
                "code": top.serial,
                "level": LEVEL_NAMES[top.level],
                "items": sum(1 for i in items if i.top.id == top.id),
            }
            for top in tops
        ],
        "item_count": len(items),
        "already_done": already,
        "to_store_id": str(destination.id) if destination else None,
        "rewards": rewards,
        "replayed": False,
    }


async def _insert_lines(
    session: AsyncSession,
    scan: ChannelScan,
    action: str,
    items: list[_Item],
    *,
    dealer_of: Any,
    store_id: uuid.UUID | None,
    now: datetime,
    guide_id: uuid.UUID | None = None,
) -> None:
    rows = [
        {
            "tenant_id": scan.tenant_id,
            "scan_id": scan.id,
            "code_id": i.code.id,
            "parent_code_id": i.top.id,
            "action": action,
            "product_id": i.product_id,
            "lot_id": i.code.lot_id,
            "dealer_id": dealer_of(i),
            "store_id": store_id,
            "guide_id": guide_id,
            "occurred_at": now,
        }
        for i in items
    ]
    for start in range(0, len(rows), CHUNK):
        await session.execute(insert(ChannelScanItem), rows[start : start + CHUNK])


async def _publish(
    session: AsyncSession,
    actor: Actor,
    request: ScanRequest,
    scan: ChannelScan,
    items: list[_Item],
    device_hash: str | None,
    alerted: dict[uuid.UUID, uuid.UUID],
) -> list[dict[str, Any]]:
    """One `ItemEvent` per item; an item whose dealer this scan raised a diversion alert for names the
    alert, so that what it earns waits for the alert's outcome."""
    kind = REWARD_KIND.get(request.action)
    if kind is None:
        return []
    rewards: list[dict[str, Any]] = []
    for item in items:
        dealer_id = item.custody.dealer_id if item.custody else actor.dealer.id
        extra: dict[str, Any] = {"serial": item.code.serial, "scanned": item.top.serial, "role": actor.role}
        if dealer_id in alerted:
            extra["diversion_alert_id"] = str(alerted[dealer_id])
        event = ItemEvent(
            tenant_id=scan.tenant_id,
            kind=kind,  # type: ignore[arg-type]
            code_id=item.code.id,
            product_id=item.product_id,
            lot_id=item.code.lot_id,
            occurred_at=scan.occurred_at,
            source_ref=f"channel-scan:{scan.id}",
            dealer_id=dealer_id,
            store_id=actor.store.id if actor.store else None,
            guide_id=actor.guide_id,
            partner_account_id=actor.account.id,
            latitude=request.latitude,
            longitude=request.longitude,
            device_hash=device_hash,
            extra=extra,
        )
        results = await publish(session, event)
        if results:
            rewards.append(
                {"code": item.code.serial, "kind": kind, "results": {k: _opaque(v) for k, v in results.items()}}
            )
    return rewards


async def get_scan(session: AsyncSession, scan_id: int) -> ChannelScan:
    scan = await session.scalar(select(ChannelScan).where(ChannelScan.id == scan_id))
    if scan is None:
        raise ScanNotFound()
    return scan


async def list_scans(
    session: AsyncSession,
    *,
    partner_account_id: uuid.UUID | None = None,
    dealer_id: uuid.UUID | None = None,
    store_id: uuid.UUID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ChannelScan]:
    query = select(ChannelScan)
    if partner_account_id is not None:
        query = query.where(ChannelScan.partner_account_id == partner_account_id)
    if dealer_id is not None:
        query = query.where(ChannelScan.dealer_id == dealer_id)
    if store_id is not None:
        query = query.where(ChannelScan.store_id == store_id)
    return list(await session.scalars(query.order_by(ChannelScan.id.desc()).limit(limit).offset(offset)))
