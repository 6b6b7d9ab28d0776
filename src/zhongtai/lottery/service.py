"""Lottery use cases: stores, sessions and stock, the commitment, entries, close, draw, wins.

State machine of a session: draft → committed (commitment published; entries accepted between
`opens_at` and `closes_at`) → closed (entries frozen, entries root published) → drawn (winners
chosen, server seed revealed). Close and draw are idempotent: a second call answers the first result.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.catalog import queries as catalog_queries
from zhongtai.channel import queries as channel_queries
from zhongtai.core import jobs, sql
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.core.db import pg_driver
from zhongtai.core.errors import ValidationFailed
from zhongtai.core.ids import new_id
from zhongtai.geo import Point, distance_km
from zhongtai.lottery import rules
from zhongtai.lottery.errors import (
    AlreadyEntered,
    EntryNotFound,
    NotOffered,
    NotOpen,
    SessionNotFound,
    WrongState,
)
from zhongtai.lottery.models import (
    SESSION_CLOSED,
    SESSION_COMMITTED,
    SESSION_DRAFT,
    SESSION_DRAWN,
    WIN_FORFEITED,
    WIN_PAID,
    WIN_PENDING_PAYMENT,
    LotteryEntry,
    LotterySession,
    LotteryStock,
    LotteryStore,
    LotteryTreeNode,
    LotteryWin,
)
from zhongtai.members import queries as members_queries
from zhongtai.members import service as members
from zhongtai.trace import merkle

SEED_PURPOSE = "lottery.server_seed"
ENTRANT_PURPOSE = "lottery.entrant"
STORED_LEVEL = 10  # tree nodes of 1,024 leaves and up are stored at close
FETCH_BATCH = 50_000
NOTIFY_TOPIC = "lottery.notify_winners"
FORFEIT_TOPIC = "lottery.forfeit_unpaid"

# Reason codes of entries excluded at close; published with the draw data and in receipts.
EXCLUDED_NOT_VERIFIED = "not_verified"
EXCLUDED_UNDER_AGE = "under_age"
EXCLUDED_DUPLICATE_IDENTITY = "duplicate_identity"
EXCLUSION_REASONS = (EXCLUDED_NOT_VERIFIED, EXCLUDED_UNDER_AGE, EXCLUDED_DUPLICATE_IDENTITY)


# Stores.


async def do_create_store(
    session: AsyncSession,
    *,
    code: str,
    name: str,
    city: str,
    latitude: float,
    longitude: float,
    channel_store_id: uuid.UUID | None = None,
) -> LotteryStore:
    """`channel_store_id`: the channel store whose clerks hand the winners' bottles over (without it a
    winner's order names no store and no clerk can complete its pickup)."""
    code = code.strip()
    if await session.scalar(select(LotteryStore.id).where(LotteryStore.code == code)) is not None:
        raise ValidationFailed(f"A store with code {code} already exists.", field="code")
    if channel_store_id is not None and not await channel_queries.store_exists(session, channel_store_id):
        raise ValidationFailed(
            f"No channel store {channel_store_id} in this brand; create the store in the channel first.",
            field="channel_store_id",
        )
    store = LotteryStore(
        code=code,
        name=name.strip(),
        city=city.strip(),
        latitude=latitude,
        longitude=longitude,
        channel_store_id=channel_store_id,
    )
    session.add(store)
    await session.flush()
    return store


async def list_stores(session: AsyncSession) -> list[LotteryStore]:
    return list(await session.scalars(select(LotteryStore).order_by(LotteryStore.code)))


# Sessions, stock, commitment.


async def get_session(session: AsyncSession, session_id: uuid.UUID) -> LotterySession:
    found = await session.get(LotterySession, session_id)
    if found is None:
        raise SessionNotFound()
    return found


async def do_create_session(
    session: AsyncSession,
    crypto: Crypto,
    *,
    title: str,
    opens_at: datetime,
    closes_at: datetime,
    payment_hours: int = 24,
    beacon_source: str = "",
) -> LotterySession:
    if closes_at <= opens_at:
        raise ValidationFailed("The window must close after it opens.", field="closes_at")
    seed = os.urandom(32)
    row = LotterySession(
        title=title.strip(),
        opens_at=opens_at,
        closes_at=closes_at,
        payment_hours=payment_hours,
        algorithm=rules.ALGORITHM,
        seed_ciphertext=crypto.pii.encrypt(seed.hex(), purpose=SEED_PURPOSE),
        seed_sha256=rules.seed_commitment(seed),
        beacon_source=beacon_source.strip(),
    )
    session.add(row)
    await session.flush()
    return row


async def list_sessions(session: AsyncSession, *, limit: int = 50) -> list[LotterySession]:
    rows = await session.scalars(select(LotterySession).order_by(LotterySession.opens_at.desc()).limit(limit))
    return list(rows)


@dataclass(frozen=True)
class StockItem:
    store_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    price_fen: int = 0  # what a winner pays for one bottle


async def do_set_stock(session: AsyncSession, lottery: LotterySession, items: Sequence[StockItem]) -> int:
    """Replace the stock table of a draft session."""
    if lottery.status != SESSION_DRAFT:
        raise WrongState("The stock is fixed once the commitment is published.")
    keys = {(i.store_id, i.product_id) for i in items}
    if len(keys) != len(items):
        raise ValidationFailed("Each store and product may appear once in the stock table.", field="items")
    store_ids = {i.store_id for i in items}
    product_ids = {i.product_id for i in items}
    known_stores = set(await session.scalars(select(LotteryStore.id).where(LotteryStore.id.in_(store_ids))))
    known_products = await catalog_queries.existing_products(session, product_ids)
    if missing := store_ids - known_stores:
        raise ValidationFailed(f"Unknown store: {sorted(map(str, missing))[0]}.", field="items")
    if missing := product_ids - known_products:
        raise ValidationFailed(f"Unknown product: {sorted(map(str, missing))[0]}.", field="items")
    await session.execute(
        delete(LotteryStock).where(LotteryStock.session_id == lottery.id).execution_options(synchronize_session=False)
    )
    session.add_all(
        LotteryStock(
            session_id=lottery.id,
            store_id=i.store_id,
            product_id=i.product_id,
            quantity=i.quantity,
            price_fen=i.price_fen,
        )
        for i in items
    )
    await session.flush()
    return len(items)


async def stock_of(session: AsyncSession, session_id: uuid.UUID) -> list[LotteryStock]:
    rows = await session.scalars(
        select(LotteryStock)
        .where(LotteryStock.session_id == session_id)
        .order_by(LotteryStock.store_id, LotteryStock.product_id)
    )
    return list(rows)


async def do_commit(session: AsyncSession, lottery: LotterySession) -> LotterySession:
    """Publish the commitment: SHA-256 of the server seed, the stock table, the algorithm."""
    if lottery.status != SESSION_DRAFT:
        raise WrongState("The commitment is already published.")
    if utcnow() >= lottery.opens_at:
        raise WrongState("The commitment must be published before the window opens.")
    if not await stock_of(session, lottery.id):
        raise ValidationFailed("Set the stock per store before publishing.", field="items")
    lottery.status = SESSION_COMMITTED
    lottery.committed_at = utcnow()
    await session.flush()
    return lottery


# Entries.


def entrant_of(crypto: Crypto, session_id: uuid.UUID, consumer_id: uuid.UUID) -> str:
    """A per-session pseudonym: links an entrant's entries within one session, nothing else."""
    return crypto.lookup_hash(f"{session_id}:{consumer_id}", purpose=ENTRANT_PURPOSE)[:32]


async def do_enter(
    session: AsyncSession,
    crypto: Crypto,
    *,
    session_id: uuid.UUID,
    consumer_id: uuid.UUID,
    product_id: uuid.UUID,
    store_id: uuid.UUID,
) -> tuple[LotteryEntry, bool]:
    """Enter a verified member of the required age; a retry with the same choice answers the entry."""
    lottery = await get_session(session, session_id)
    now = utcnow()
    if lottery.status != SESSION_COMMITTED or not lottery.opens_at <= now < lottery.closes_at:
        raise NotOpen(opens_at=lottery.opens_at.isoformat(), closes_at=lottery.closes_at.isoformat())
    identity = await members.check_eligible(session, consumer_id, minimum_age=lottery.minimum_age)
    entry = LotteryEntry(
        id=new_id(),
        tenant_id=lottery.tenant_id,
        session_id=session_id,
        product_id=product_id,
        store_id=store_id,
        consumer_id=consumer_id,
        identity_hash=identity.id_hash,
        entrant=entrant_of(crypto, session_id, consumer_id),
        excluded_reason=None,
        created_at=now,
    )
    # One statement: the entry, if the store offers the product in this session and the member has
    # no entry for it yet (the unique constraint decides, also between racing requests).
    entries = cast(Table, LotteryEntry.__table__)
    stock = cast(Table, LotteryStock.__table__)
    values = {column: getattr(entry, column) for column in _ENTRY_INSERT_COLUMNS}
    offered = select(
        *(literal(values[column], type_=entries.c[column].type) for column in _ENTRY_INSERT_COLUMNS)
    ).where(
        select(stock.c.quantity)
        .where(
            stock.c.tenant_id == lottery.tenant_id,
            stock.c.session_id == session_id,
            stock.c.store_id == store_id,
            stock.c.product_id == product_id,
            stock.c.quantity > 0,
        )
        .exists()
    )
    inserted = await session.execute(
        sql.insert_ignore(session, entries).from_select(list(_ENTRY_INSERT_COLUMNS), offered).returning(entries.c.id)
    )
    if inserted.scalar_one_or_none() is not None:
        return entry, True
    # Not inserted: an entry of this member for this product exists (a retry, or a parallel request
    # that won), or the store does not offer the product.
    existing = await session.scalar(
        select(LotteryEntry).where(
            LotteryEntry.session_id == session_id,
            LotteryEntry.product_id == product_id,
            LotteryEntry.consumer_id == consumer_id,
        )
    )
    if existing is not None:
        if existing.store_id == store_id:
            return existing, False
        raise AlreadyEntered(entry_id=str(existing.id))
    raise NotOffered()


_ENTRY_INSERT_COLUMNS = (
    "id",
    "tenant_id",
    "session_id",
    "product_id",
    "store_id",
    "consumer_id",
    "identity_hash",
    "entrant",
    "excluded_reason",
    "created_at",
)


async def entry_counts(
    session: AsyncSession, session_id: uuid.UUID, *, eligible_only: bool = False
) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
    """Entries per (store, product); with `eligible_only`, those not excluded."""
    statement = (
        select(LotteryEntry.store_id, LotteryEntry.product_id, func.count())
        .where(LotteryEntry.session_id == session_id)
        .group_by(LotteryEntry.store_id, LotteryEntry.product_id)
    )
    if eligible_only:
        statement = statement.where(LotteryEntry.excluded_reason.is_(None))
    rows = await session.execute(statement)
    return {(store, product): count for store, product, count in rows.all()}


@dataclass(frozen=True)
class NearbyStore:
    store: LotteryStore
    distance_km: float | None
    products: list[uuid.UUID]


async def stores_for_session(
    session: AsyncSession, session_id: uuid.UUID, *, latitude: float | None, longitude: float | None
) -> list[NearbyStore]:
    """Stores with stock in the session, nearest first when the member's location is known."""
    rows = await session.execute(
        select(LotteryStore, LotteryStock.product_id)
        .join(LotteryStock, LotteryStock.store_id == LotteryStore.id)
        .where(LotteryStock.session_id == session_id, LotteryStock.quantity > 0, LotteryStore.is_active.is_(True))
    )
    here = Point(latitude, longitude) if latitude is not None and longitude is not None else None
    found: dict[uuid.UUID, NearbyStore] = {}
    for store, product_id in rows.all():
        if store.id not in found:
            distance = distance_km(here, Point(store.latitude, store.longitude)) if here is not None else None
            found[store.id] = NearbyStore(store, distance, [])
        found[store.id].products.append(product_id)
    return sorted(found.values(), key=lambda s: (s.distance_km if s.distance_km is not None else 0.0, s.store.code))


# Close: exclusions, the frozen list, the entries root.


@dataclass(frozen=True)
class FrozenEntry:
    entry_id: uuid.UUID
    product_id: uuid.UUID
    store_id: uuid.UUID
    entrant: str
    excluded_reason: str | None

    @property
    def leaf(self) -> bytes:
        return rules.encode_leaf(
            str(self.entry_id), str(self.product_id), str(self.store_id), self.entrant, self.excluded_reason
        )


def _hyphenated(value: Any) -> str:
    """A UUID column value as text: PostgreSQL gives UUIDs, SQLite 32 hex digits."""
    if isinstance(value, uuid.UUID):
        return str(value)
    text_value = str(value)
    if len(text_value) == 32:
        return f"{text_value[:8]}-{text_value[8:12]}-{text_value[12:16]}-{text_value[16:20]}-{text_value[20:]}"
    return text_value


async def entry_rows(
    session: AsyncSession, lottery: LotterySession
) -> AsyncIterator[list[tuple[str, str, str, str, str | None]]]:
    """The frozen list in leaf order (by entry id) as text tuples (entry id, product id, store id,
    entrant, excluded reason), in batches. Core SQL for speed over millions of rows: it filters by
    tenant itself."""
    dialect = session.get_bind().dialect.name
    columns = "id, product_id, store_id, entrant, excluded_reason"
    if dialect == "postgresql":
        columns = "id::text, product_id::text, store_id::text, entrant, excluded_reason"
    statement = text(
        f"SELECT {columns} FROM lottery_entries WHERE tenant_id = :tenant AND session_id = :session ORDER BY id"  # noqa: S608 - fixed column list
    ).bindparams(tenant=lottery.tenant_id, session=lottery.id)
    stream = await session.stream(statement.execution_options(yield_per=FETCH_BATCH))
    convert = dialect != "postgresql"
    async for partition in stream.partitions(FETCH_BATCH):
        if convert:
            yield [(_hyphenated(a), _hyphenated(b), _hyphenated(c), d, e) for a, b, c, d, e in partition]
        else:
            yield [tuple(row) for row in partition]


def leaf_of(row: tuple[str, str, str, str, str | None]) -> bytes:
    return f"{rules.ALGORITHM}|{row[0]}|{row[1]}|{row[2]}|{row[3]}|{row[4] or ''}".encode()


async def _mark_exclusions(session: AsyncSession, lottery: LotterySession) -> int:
    """Exclude every entry after the first of one identity for one product (an identity can move to
    another account during the window), then entries whose member is no longer verified or old
    enough. Set-based, so that it stays fast over millions of entries."""
    entries = cast(Table, LotteryEntry.__table__)
    in_session = (entries.c.tenant_id == lottery.tenant_id) & (entries.c.session_id == lottery.id)
    if session.get_bind().dialect.name == "postgresql":
        # The entries arrived in bulk since the planner last looked: without fresh statistics it may
        # pick nested loops over millions of rows.
        await session.execute(text("ANALYZE lottery_entries"))
    await members_queries.refresh_statistics(session)
    today = members.today()
    try:
        cutoff = today.replace(year=today.year - lottery.minimum_age)
    except ValueError:  # 29 February
        cutoff = today.replace(year=today.year - lottery.minimum_age, day=28)
    ranked = (
        select(
            entries.c.id,
            func.row_number()
            .over(partition_by=(entries.c.product_id, entries.c.identity_hash), order_by=entries.c.id)
            .label("position"),
        )
        .where(in_session)
        .subquery()
    )
    duplicate = entries.c.id.in_(select(ranked.c.id).where(ranked.c.position > 1))
    # The members' conditions over their identities, correlated with each entry (set-based).
    verified = members_queries.verified_identity_exists(entries.c.tenant_id, entries.c.consumer_id)
    old_enough = members_queries.verified_identity_exists(
        entries.c.tenant_id, entries.c.consumer_id, born_on_or_before=cutoff
    )
    excluded = 0
    for reason, condition in (
        (EXCLUDED_DUPLICATE_IDENTITY, duplicate),
        (EXCLUDED_NOT_VERIFIED, ~verified),
        (EXCLUDED_UNDER_AGE, ~old_enough),
    ):
        result = await session.execute(
            update(entries)
            .where(in_session, entries.c.excluded_reason.is_(None), condition)
            .values(excluded_reason=reason)
        )
        excluded += int(result.rowcount)  # type: ignore[attr-defined]
    return excluded


# Every frozen entry's leaf hash, in leaf order (`entry_rows`' order: by entry id).
_PG_LEAF_HASHES_SQL = (
    "SELECT sha256('\\x00'::bytea || convert_to('"  # noqa: S608 - fixed texts only
    + rules.ALGORITHM
    + "|' || id::text || '|' || product_id::text || '|' || store_id::text || '|' || entrant || '|'"
    " || coalesce(excluded_reason, ''), 'UTF8'))"
    " FROM lottery_entries WHERE tenant_id = $1 AND session_id = $2 ORDER BY id"
)


async def do_close(session: AsyncSession, lottery: LotterySession) -> LotterySession:
    """Freeze the entries, apply exclusions, publish the entries root. Idempotent."""
    if lottery.status in (SESSION_CLOSED, SESSION_DRAWN):
        return lottery
    if lottery.status != SESSION_COMMITTED:
        raise WrongState("Only a published session can be closed.")
    if utcnow() < lottery.closes_at:
        raise WrongState("The window has not closed yet.")
    claimed = await session.execute(
        update(LotterySession)
        .where(LotterySession.id == lottery.id, LotterySession.status == SESSION_COMMITTED)
        .values(status=SESSION_CLOSED, closed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await session.refresh(lottery)
        return lottery  # a parallel close did it
    excluded = await _mark_exclusions(session, lottery)
    tree = rules.StreamingTree(keep_from_level=STORED_LEVEL)
    if session.get_bind().dialect.name == "postgresql":
        # The leaf hashes computed by the database, in leaf order, fetched in batches: only the tree
        # is built here (PostgreSQL hashes the next batch while this one is added).
        driver = await pg_driver(session)
        cursor = await driver.cursor(_PG_LEAF_HASHES_SQL, lottery.tenant_id, lottery.id)
        while batch := await cursor.fetch(FETCH_BATCH):
            add = tree.add
            for (leaf_hash,) in batch:
                add(leaf_hash)
    else:
        async for batch in entry_rows(session, lottery):
            for row in batch:
                tree.add(hashlib.sha256(b"\x00" + leaf_of(row)).digest())
    if tree.kept:
        rows = [
            {"tenant_id": lottery.tenant_id, "session_id": lottery.id, "level": lvl, "node_index": i, "hash": h}
            for (lvl, i), h in tree.kept.items()
        ]
        for start in range(0, len(rows), 5000):
            await session.execute(insert(LotteryTreeNode), rows[start : start + 5000])
    await session.refresh(lottery)
    lottery.entries_count = tree.size
    lottery.excluded_count = excluded
    lottery.entries_root = tree.root().hex()
    await session.flush()
    return lottery


# Draw.


def server_seed_of(crypto: Crypto, lottery: LotterySession) -> bytes:
    return bytes.fromhex(crypto.pii.decrypt(lottery.seed_ciphertext, purpose=SEED_PURPOSE))


async def do_draw(
    session: AsyncSession, crypto: Crypto, lottery: LotterySession, *, beacon: str | None
) -> LotterySession:
    """Choose the winners, record the wins, reveal the server seed. Idempotent: a drawn session is
    answered as it is, whatever beacon a second call brings."""
    if lottery.status == SESSION_DRAWN:
        return lottery
    if lottery.status != SESSION_CLOSED or lottery.entries_root is None:
        raise WrongState("Close the session before the draw.")
    beacon = (beacon or "").strip() or None
    if lottery.beacon_source and beacon is None:
        raise ValidationFailed("This session announced a public beacon; give its value.", field="beacon")
    claimed = await session.execute(
        update(LotterySession)
        .where(LotterySession.id == lottery.id, LotterySession.status == SESSION_CLOSED)
        .values(status=SESSION_DRAWN)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        await session.refresh(lottery)
        return lottery
    server_seed = server_seed_of(crypto, lottery)
    seed = rules.draw_seed(server_seed, bytes.fromhex(lottery.entries_root), beacon)
    stock = {(str(s.store_id), str(s.product_id)): s.quantity for s in await stock_of(session, lottery.id)}
    now = utcnow()
    due = now + timedelta(hours=lottery.payment_hours)
    if session.get_bind().dialect.name == "postgresql":
        winners_count = await _draw_in_database(session, lottery, seed, stock, now=now, due=due)
    else:
        winners_count = await _draw_in_process(session, lottery, seed, stock, now=now, due=due)
    await session.refresh(lottery)
    lottery.beacon = beacon
    lottery.draw_seed = seed.hex()
    lottery.server_seed = server_seed.hex()
    lottery.drawn_at = now
    lottery.winners_count = winners_count
    await session.flush()
    await jobs.enqueue(
        session, NOTIFY_TOPIC, {"session_id": str(lottery.id)}, dedupe_key=f"{NOTIFY_TOPIC}:{lottery.id}"
    )
    await jobs.enqueue(
        session,
        FORFEIT_TOPIC,
        {"session_id": str(lottery.id)},
        dedupe_key=f"{FORFEIT_TOPIC}:{lottery.id}",
        delay_seconds=lottery.payment_hours * 3600 + 1,
    )
    return lottery


# The draw inside PostgreSQL: every entry's leaf hash and HMAC score computed by the database (the
# built-in sha256(); HMAC-SHA256 as RFC 2104 writes it, with the key's inner and outer pads given),
# so that no entry crosses the wire. Only the candidates of each group are ranked: entries whose
# score lies below a per-group bound chosen so that about 4k + 32 of a group's n entries fall under
# it (scores are uniform). A group with fewer than min(k, n) candidates is ranked again over all its
# entries, so the winners are exactly the k lowest scores whatever the bound.
# The leaf's middle, `|<product_id>|<store_id>|`, is the group's (given with it), so that each entry
# costs one UUID's text and one concatenation before its three SHA-256 computations.
_PG_LEAF_HASH = (
    "sha256('\\x00'::bytea || convert_to('"
    + rules.ALGORITHM
    + "|' || e.id::text || g.middle || e.entrant || '|', 'UTF8'))"
)
_PG_SCORE = f"sha256($4::bytea || sha256($3::bytea || {_PG_LEAF_HASH}))"
# The winners of the given groups: candidates under each group's bound (none: every entry), ranked
# by score then entry id; a group's rows only when its candidates were enough (`found >= k`), so that
# a short group is ranked again without a bound. A read-only query, so PostgreSQL may scan in parallel.
_PG_DRAW_SQL = (
    "SELECT r.id, r.consumer_id, r.store_id, r.product_id, r.rank FROM ("  # noqa: S608 - fixed texts only
    " SELECT c.id, c.consumer_id, c.store_id, c.product_id, c.k, c.bound,"
    " row_number() OVER (PARTITION BY c.store_id, c.product_id ORDER BY c.score, c.id) AS rank,"
    " count(*) OVER (PARTITION BY c.store_id, c.product_id) AS found"
    " FROM (SELECT e.id, e.consumer_id, e.store_id, e.product_id, g.k, g.bound, " + _PG_SCORE + " AS score"
    " FROM lottery_entries AS e"
    " JOIN unnest($5::uuid[], $6::uuid[], $7::int[], $8::bytea[], $9::text[])"
    " AS g(store_id, product_id, k, bound, middle)"
    " ON g.store_id = e.store_id AND g.product_id = e.product_id"
    " WHERE e.tenant_id = $1 AND e.session_id = $2 AND e.excluded_reason IS NULL OFFSET 0) AS c"
    " WHERE c.bound IS NULL OR c.score < c.bound"
    ") AS r WHERE r.rank <= r.k AND (r.bound IS NULL OR r.found >= r.k)"
)
_PG_INSERT_WINS_SQL = (
    "INSERT INTO lottery_wins (id, tenant_id, session_id, entry_id, consumer_id, product_id, store_id, rank,"
    " status, payment_due_at, created_at)"
    " SELECT w.id, $1, $2, w.entry_id, w.consumer_id, w.product_id, w.store_id, w.rank, $3, $4, $5"
    " FROM unnest($6::uuid[], $7::uuid[], $8::uuid[], $9::uuid[], $10::uuid[], $11::int[])"
    " AS w(id, entry_id, consumer_id, product_id, store_id, rank)"
)


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer key pads (RFC 2104; a key of at most 64 bytes is zero-padded)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\x00")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


CANDIDATES_PER_GROUP = 4  # × stock, + 32: the expected candidates of a group below its bound


def _score_bound(k: int, n: int) -> bytes | None:
    """The bound under which about 4k + 32 of n uniform 256-bit scores fall; None: rank them all."""
    wanted = CANDIDATES_PER_GROUP * k + 32
    if wanted >= n:
        return None
    return ((wanted << 256) // n).to_bytes(32, "big")


async def _draw_in_database(
    session: AsyncSession,
    lottery: LotterySession,
    seed: bytes,
    stock: dict[tuple[str, str], int],
    *,
    now: datetime,
    due: datetime,
) -> int:
    """Rank inside PostgreSQL (see `_PG_DRAW_SQL`), then insert the wins with one statement."""
    counts = await entry_counts(session, lottery.id, eligible_only=True)
    wanted: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    pending: list[tuple[uuid.UUID, uuid.UUID, int, bytes | None]] = []
    for (store, product), k in sorted(stock.items()):
        key = (uuid.UUID(store), uuid.UUID(product))
        n = counts.get(key, 0)
        if k > 0 and n > 0:
            wanted[key] = min(k, n)
            pending.append((*key, k, _score_bound(k, n)))
    inner, outer = _hmac_pads(seed)
    driver = await pg_driver(session)
    winners: list[Any] = []
    while pending:
        rows = await driver.fetch(
            _PG_DRAW_SQL,
            lottery.tenant_id,
            lottery.id,
            inner,
            outer,
            [g[0] for g in pending],
            [g[1] for g in pending],
            [g[2] for g in pending],
            [g[3] for g in pending],
            [f"|{g[1]}|{g[0]}|" for g in pending],
        )
        winners.extend(rows)
        found: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
        for row in rows:
            key = (row["store_id"], row["product_id"])
            found[key] = found.get(key, 0) + 1
        # A group whose bound left fewer candidates than winners (a vanishing chance): every one of
        # its entries, ranked again.
        pending = [
            (store, product, k, None)
            for store, product, k, _ in pending
            if found.get((store, product), 0) < wanted[(store, product)]
        ]
    if winners:
        await driver.execute(
            _PG_INSERT_WINS_SQL,
            lottery.tenant_id,
            lottery.id,
            WIN_PENDING_PAYMENT,
            due,
            now,
            [uuid.uuid4() for _ in winners],
            [w["id"] for w in winners],
            [w["consumer_id"] for w in winners],
            [w["product_id"] for w in winners],
            [w["store_id"] for w in winners],
            [int(w["rank"]) for w in winners],
        )
    return len(winners)


async def _draw_in_process(
    session: AsyncSession,
    lottery: LotterySession,
    seed: bytes,
    stock: dict[tuple[str, str], int],
    *,
    now: datetime,
    due: datetime,
) -> int:
    """Every entry's leaf and score computed here, streamed in batches (SQLite)."""
    picker = rules.WinnerPicker(seed, stock)
    sha256 = hashlib.sha256
    async for batch in entry_rows(session, lottery):
        for row in batch:
            if row[4] is None:
                picker.add(row[0], row[2], row[1], sha256(b"\x00" + leaf_of(row)).digest())
    winners = picker.winners()
    if winners:
        consumer_of = await _consumers_of(session, [uuid.UUID(w.entry_id) for w in winners])
        # Core insert, tenant given explicitly: the ORM's bulk path costs more than the draw itself.
        await session.execute(
            insert(cast(Table, LotteryWin.__table__)),
            [
                {
                    "id": uuid.uuid4(),
                    "tenant_id": lottery.tenant_id,
                    "session_id": lottery.id,
                    "entry_id": uuid.UUID(w.entry_id),
                    "consumer_id": consumer_of[uuid.UUID(w.entry_id)],
                    "product_id": uuid.UUID(w.product_id),
                    "store_id": uuid.UUID(w.store_id),
                    "rank": w.rank,
                    "status": WIN_PENDING_PAYMENT,
                    "payment_due_at": due,
                    "created_at": now,
                }
                for w in winners
            ],
        )
    return len(winners)


async def _consumers_of(session: AsyncSession, entry_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    found: dict[uuid.UUID, uuid.UUID] = {}
    for start in range(0, len(entry_ids), 1000):
        rows = await session.execute(
            select(LotteryEntry.id, LotteryEntry.consumer_id).where(
                LotteryEntry.id.in_(entry_ids[start : start + 1000])
            )
        )
        found.update(dict(rows.all()))
    return found


# Wins.


async def do_forfeit_unpaid(session: AsyncSession, session_id: uuid.UUID | None = None) -> int:
    """Forfeit every win whose payment deadline has passed unpaid."""
    statement = (
        update(LotteryWin)
        .where(LotteryWin.status == WIN_PENDING_PAYMENT, LotteryWin.payment_due_at <= utcnow())
        .values(status=WIN_FORFEITED, forfeited_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if session_id is not None:
        statement = statement.where(LotteryWin.session_id == session_id)
    result = await session.execute(statement)
    return int(result.rowcount)  # type: ignore[attr-defined]


ORDER_SOURCE = "lottery"


async def do_create_win_orders(session: AsyncSession, lottery: LotterySession, wins: Sequence[LotteryWin]) -> int:
    """The sales order of each win (idempotent: `source_ref` is the win's id): one bottle at the stock's
    price, to pay by the win's deadline, picked up at the lottery store's channel store."""
    from zhongtai.sales import service as sales
    from zhongtai.sales.rules import OrderDraft

    if not wins:
        return 0
    prices = {
        (s.store_id, s.product_id): s.price_fen
        for s in await session.scalars(select(LotteryStock).where(LotteryStock.session_id == lottery.id))
    }
    pickup = dict(
        (
            await session.execute(
                select(LotteryStore.id, LotteryStore.channel_store_id).where(
                    LotteryStore.id.in_({w.store_id for w in wins})
                )
            )
        ).all()
    )
    drafts = [
        OrderDraft(
            source=ORDER_SOURCE,
            source_ref=str(win.id),
            consumer_id=win.consumer_id,
            product_id=win.product_id,
            quantity=1,
            unit_price_fen=int(prices.get((win.store_id, win.product_id), 0)),
            pay_deadline=win.payment_due_at,
            store_id=pickup.get(win.store_id),
            created_at=win.created_at,
        )
        for win in wins
        if win.status == WIN_PENDING_PAYMENT and win.payment_due_at > utcnow()
    ]
    return await sales.create_orders_bulk(session, lottery.tenant_id, drafts)


async def on_order_paid(session: AsyncSession, event: Any) -> bool:
    """Subscriber of `sales.events.OrderPaid`: a winner paid; the win is paid (once)."""
    if event.source != ORDER_SOURCE:
        return False
    done = await session.execute(
        update(LotteryWin)
        .where(LotteryWin.id == uuid.UUID(event.source_ref), LotteryWin.status == WIN_PENDING_PAYMENT)
        .values(status=WIN_PAID)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


async def on_order_expired(session: AsyncSession, event: Any) -> bool:
    """Subscriber of `sales.events.OrderExpired`: a winner did not pay in time; the win is forfeited."""
    if event.source != ORDER_SOURCE:
        return False
    done = await session.execute(
        update(LotteryWin)
        .where(LotteryWin.id == uuid.UUID(event.source_ref), LotteryWin.status == WIN_PENDING_PAYMENT)
        .values(status=WIN_FORFEITED, forfeited_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


async def order_of_win(session: AsyncSession, win_id: uuid.UUID) -> Any:
    from zhongtai.sales import service as sales

    return await sales.get_order_by_source(session, ORDER_SOURCE, str(win_id))


async def wins_of(session: AsyncSession, session_id: uuid.UUID) -> list[LotteryWin]:
    rows = await session.scalars(
        select(LotteryWin)
        .where(LotteryWin.session_id == session_id)
        .order_by(LotteryWin.store_id, LotteryWin.product_id, LotteryWin.rank)
    )
    return list(rows)


# Receipts and proofs.


async def get_entry(session: AsyncSession, entry_id: uuid.UUID, *, consumer_id: uuid.UUID | None) -> LotteryEntry:
    entry = await session.get(LotteryEntry, entry_id)
    if entry is None or (consumer_id is not None and entry.consumer_id != consumer_id):
        raise EntryNotFound()
    return entry


async def _leaf_block(session: AsyncSession, session_id: uuid.UUID, start: int, end: int) -> list[bytes]:
    rows = await session.execute(
        select(
            LotteryEntry.id,
            LotteryEntry.product_id,
            LotteryEntry.store_id,
            LotteryEntry.entrant,
            LotteryEntry.excluded_reason,
        )
        .where(LotteryEntry.session_id == session_id)
        .order_by(LotteryEntry.id)
        .offset(start)
        .limit(end - start)
    )
    return [merkle.leaf_hash(FrozenEntry(*row).leaf) for row in rows.all()]


async def inclusion_proof(
    session: AsyncSession, lottery: LotterySession, entry: LotteryEntry
) -> tuple[int, list[bytes]]:
    """The entry's leaf index and its RFC 9162 inclusion proof in the frozen list."""
    index = int(
        await session.scalar(
            select(func.count())
            .select_from(LotteryEntry)
            .where(LotteryEntry.session_id == lottery.id, LotteryEntry.id < entry.id)
        )
        or 0
    )
    ranges = merkle.inclusion_ranges(index, lottery.entries_count)
    needed = merkle.nodes_for(ranges)
    stored_ids = [n for n in needed if n[0] >= STORED_LEVEL]
    nodes: dict[merkle.NodeId, bytes] = {}
    if stored_ids:
        rows = await session.execute(
            select(LotteryTreeNode.level, LotteryTreeNode.node_index, LotteryTreeNode.hash).where(
                LotteryTreeNode.session_id == lottery.id,
                LotteryTreeNode.level >= STORED_LEVEL,
                LotteryTreeNode.node_index.in_({i for _l, i in stored_ids}),
            )
        )
        nodes.update({(level, i): h for level, i, h in rows.all()})
    block_size = 1 << STORED_LEVEL
    blocks: dict[int, list[bytes]] = {}
    for level, i in needed:
        if level >= STORED_LEVEL:
            continue
        start, end = i << level, (i + 1) << level
        block = start // block_size
        if block not in blocks:
            blocks[block] = await _leaf_block(
                session, lottery.id, block * block_size, min((block + 1) * block_size, lottery.entries_count)
            )
        offset = block * block_size
        nodes[(level, i)] = rules.entries_root(blocks[block][start - offset : end - offset])
    return index, [merkle.range_hash(start, end, nodes) for start, end in ranges]


def result_of(lottery: LotterySession, entry: LotteryEntry, win: LotteryWin | None) -> str:
    if entry.excluded_reason is not None:
        return "excluded"
    if lottery.status != SESSION_DRAWN:
        return "pending"
    return "won" if win is not None else "not_drawn"


async def receipt(session: AsyncSession, lottery: LotterySession, entry: LotteryEntry) -> dict[str, Any]:
    leaf = FrozenEntry(entry.id, entry.product_id, entry.store_id, entry.entrant, entry.excluded_reason).leaf
    win = None
    if lottery.status == SESSION_DRAWN:  # wins exist only once drawn
        win = await session.scalar(select(LotteryWin).where(LotteryWin.entry_id == entry.id))
    data: dict[str, Any] = {
        "entry_id": str(entry.id),
        "session_id": str(lottery.id),
        "product_id": str(entry.product_id),
        "store_id": str(entry.store_id),
        "entrant": entry.entrant,
        "entered_at": entry.created_at.isoformat(),
        "leaf": leaf.decode(),
        "leaf_hash": merkle.leaf_hash(leaf).hex(),
        "excluded_reason": entry.excluded_reason,
        "result": result_of(lottery, entry, win),
        "leaf_index": None,
        "tree_size": None,
        "entries_root": lottery.entries_root,
        "inclusion_proof": None,
        "win": None,
    }
    if lottery.entries_root is not None:
        index, proof = await inclusion_proof(session, lottery, entry)
        data.update(leaf_index=index, tree_size=lottery.entries_count, inclusion_proof=[p.hex() for p in proof])
    if win is not None:
        order = await order_of_win(session, win.id)
        data["win"] = {
            "id": str(win.id),
            "rank": win.rank,
            "status": win.status,
            "payment_due_at": win.payment_due_at.isoformat(),
            # the order to pay (created right after the draw, with the winners' notification)
            "order": None
            if order is None
            else {
                "id": str(order.id),
                "order_no": order.order_no,
                "state": order.state,
                "amount_fen": order.amount_fen,
                "store_id": str(order.store_id) if order.store_id else None,
            },
        }
    return data


# Public data.


async def commitment(session: AsyncSession, lottery: LotterySession) -> dict[str, Any]:
    if lottery.status == SESSION_DRAFT:
        raise SessionNotFound()  # nothing is public before the commitment
    return {
        "format": "zt-lottery-commitment/1",
        "session_id": str(lottery.id),
        "title": lottery.title,
        "algorithm": lottery.algorithm,
        "opens_at": lottery.opens_at.isoformat(),
        "closes_at": lottery.closes_at.isoformat(),
        "minimum_age": lottery.minimum_age,
        "server_seed_sha256": lottery.seed_sha256,
        "beacon_source": lottery.beacon_source or None,
        "committed_at": lottery.committed_at.isoformat() if lottery.committed_at else None,
        "stock": [
            {"store_id": str(s.store_id), "product_id": str(s.product_id), "quantity": s.quantity}
            for s in await stock_of(session, lottery.id)
        ],
    }


async def draw_data(session: AsyncSession, lottery: LotterySession) -> dict[str, Any]:
    """Everything needed to recompute the draw: commitment, frozen entries, root, seed, winners."""
    data = await commitment(session, lottery)
    data["format"] = "zt-lottery-draw/1"
    data["status"] = lottery.status
    data["entries_root"] = lottery.entries_root
    data["entries"] = []
    if lottery.status in (SESSION_CLOSED, SESSION_DRAWN):
        async for batch in entry_rows(session, lottery):
            data["entries"].extend(
                {"entry_id": a, "product_id": b, "store_id": c, "entrant": d, "excluded_reason": e}
                for a, b, c, d, e in batch
            )
    data["beacon"] = lottery.beacon
    data["server_seed"] = lottery.server_seed
    data["draw_seed"] = lottery.draw_seed
    data["winners"] = [
        {"entry_id": str(w.entry_id), "store_id": str(w.store_id), "product_id": str(w.product_id), "rank": w.rank}
        for w in (await wins_of(session, lottery.id) if lottery.status == SESSION_DRAWN else [])
    ]
    return data
