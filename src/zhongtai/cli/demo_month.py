"""A believable month for the demo brand, generated through the modules' own services.

Dealers with territories in four provinces, their stores (one of the Chengdu dealer's stores lies in
Chongqing, outside its territory: the case shipped there raises a diversion alert), shopping guides and
partner accounts; cases received by the dealers, shipped to the stores, opened and sold bottle by
bottle; consumers who sign in and check the PINs of the bottles they bought, near the store, some
twice, and one bottle checked in Shanghai and minutes later in Beijing (a clone alert); a funded fee
pool whose rules pay the consumer's red packet and the store's sale reward through the ledger; and the
members' daily lifecycle run.

Every step runs at its own moment of the month (`clock.travel`), day by day up to now, with a seeded
`random.Random`: the same days give the same month. Idempotent: when the first demo dealer exists,
nothing is added.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.cn import ric

from zhongtai.authenticity import models as auth_models
from zhongtai.authenticity import resolver, verification
from zhongtai.authenticity import rules as auth_rules
from zhongtai.authenticity import service as auth_service
from zhongtai.catalog import service as catalog
from zhongtai.catalog.models import Product
from zhongtai.catalog.rules import LotDraft
from zhongtai.channel import partners, scans
from zhongtai.channel import service as channel
from zhongtai.channel.models import Dealer, Guide, PartnerAccount, Store
from zhongtai.channel.rules import DealerDraft, GuideDraft, StoreDraft
from zhongtai.channel.scan_models import DEALER_RECEIVE, SHIP, ChannelScan, DiversionAlert
from zhongtai.codes import custody
from zhongtai.codes import service as codes
from zhongtai.codes.generation import generate_batch
from zhongtai.codes.models import Code, CodeBatch
from zhongtai.codes.rules import pin_for
from zhongtai.core import consumers
from zhongtai.core.cli_support import cli_principal
from zhongtai.core.clock import travel, utcnow
from zhongtai.core.jobs import Worker
from zhongtai.core.models import Consumer, Tenant
from zhongtai.core.permissions import Role
from zhongtai.core.principals import Principal
from zhongtai.core.runtime import Runtime
from zhongtai.lottery import service as lottery
from zhongtai.lottery.models import LotteryEntry
from zhongtai.members import lifecycle
from zhongtai.members import service as identity
from zhongtai.members.models import Member
from zhongtai.members.verifier import SandboxIdentityVerifier
from zhongtai.rewards import service as rewards
from zhongtai.rewards.models import PAID, RewardGrant
from zhongtai.sales import payments, pickup
from zhongtai.sales import rules as sales_rules
from zhongtai.sales import service as sales
from zhongtai.sales.models import SalesOrder

SEED = 2026
CST = timezone(timedelta(hours=8))
LOT_NUMBER = "L20261115"
ITEM_NOTE, CASE_NOTE = "demo month bottles", "demo month cases"
BOTTLES_PER_CASE = 6
POOL_CODE = "DEMO-OPEN"
POOL_FUNDED_FEN = 1_000_000  # ¥10,000
RED_PACKET_FEN = 188  # a consumer's first check of a bottle
SALE_REWARD_FEN = 500  # the store that sells it

# code, name, contact, territory (administrative region codes), cases received in the month
DEALERS: tuple[tuple[str, str, str, tuple[str, ...], int], ...] = (
    ("DM-GZ", "贵州黔香商贸有限公司", "张黔", ("520000",), 8),
    ("DM-GD", "广州粤酒行贸易有限公司", "陈粤", ("440100",), 6),
    ("DM-SH", "上海申城酒业有限公司", "周申", ("310000",), 6),
    ("DM-CD", "成都蜀韵商贸有限公司", "李蜀", ("510100",), 4),
)
DIVERTED_STORE = "ST-CQ-01"
# code, name, dealer, latitude, longitude, city, shopping guide (or "")
STORES: tuple[tuple[str, str, str, float, float, str, str], ...] = (
    ("ST-GY-01", "贵阳观山湖名酒行", "DM-GZ", 26.6190, 106.6460, "贵阳", "小王"),
    ("ST-GY-02", "贵阳南明烟酒店", "DM-GZ", 26.5690, 106.7130, "贵阳", ""),
    ("ST-ZY-01", "遵义红花岗酒行", "DM-GZ", 27.6990, 106.9270, "遵义", ""),
    ("ST-GZ-01", "广州天河名酒坊", "DM-GD", 23.1291, 113.3260, "广州", "小林"),
    ("ST-GZ-02", "广州越秀烟酒行", "DM-GD", 23.1290, 113.2670, "广州", ""),
    ("ST-GZ-03", "广州海珠酒业", "DM-GD", 23.0830, 113.3170, "广州", ""),
    ("ST-SH-01", "上海静安名酒汇", "DM-SH", 31.2290, 121.4480, "上海", "小周"),
    ("ST-SH-02", "上海浦东酒行", "DM-SH", 31.2210, 121.5440, "上海", ""),
    ("ST-SH-03", "上海徐汇烟酒店", "DM-SH", 31.1880, 121.4370, "上海", ""),
    ("ST-CD-01", "成都锦江酒行", "DM-CD", 30.6570, 104.0810, "成都", ""),
    ("ST-CD-02", "成都武侯名酒坊", "DM-CD", 30.6420, 104.0430, "成都", ""),
    (DIVERTED_STORE, "重庆渝中酒行", "DM-CD", 29.5570, 106.5770, "重庆", ""),
)
# consumers who sign in, per city
CONSUMERS_PER_CITY = {"贵阳": 9, "遵义": 4, "广州": 9, "上海": 9, "成都": 6, "重庆": 2}
CLONE_PLACE = (39.9087, 116.3975)  # Beijing: the copy of a Shanghai bottle's label
# The reservation lottery (申购) of the month: a week before today, at a Guiyang store that keeps one case
# back for the winners; members of Guiyang and Zunyi verify their identity and enter.
LOTTERY_STORE = "ST-GY-01"
LOTTERY_CODE = "GY-LOT"
LOTTERY_BOTTLES = 4
LOTTERY_PRICE_FEN = 149_900
LOTTERY_ENTRANTS = 10
LOTTERY_MIN_DAYS = 12  # a shorter demo has no lottery
ENTRANT_NAMES = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴婷", "徐强", "孙丽", "马超")


@dataclass(frozen=True)
class MonthSummary:
    days: int  # with a channel scan
    dealers: int
    stores: int
    guides: int
    partners: int
    bottles: int
    cases: int
    channel_scans: int
    verifications: int
    consumers: int
    members: int
    rewards_paid_fen: int
    diversion_alerts: int
    clone_alerts: int
    lottery_entries: int
    orders: int
    orders_paid: int
    pickups: int


@dataclass(order=True)
class Action:
    at: datetime
    seq: int
    kind: str = field(compare=False)
    args: dict[str, Any] = field(compare=False, default_factory=dict)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=CST).astimezone(UTC)


class _Planner:
    """The month as a list of timed actions, made without the database (pure, seeded): stock moves
    from the dealers to the stores that run low, the stores open cases and sell, consumers check."""

    def __init__(self, days: int, start: date, cases: dict[str, list[str]], contents: dict[str, list[str]]) -> None:
        self.days, self.start, self.cases, self.contents = days, start, cases, contents
        self.rng = random.Random(SEED)
        self.actions: list[Action] = []
        self.city_of = {s[0]: s[5] for s in STORES}
        self.place_of = {s[0]: (s[3], s[4]) for s in STORES}
        self.guided = {s[0] for s in STORES if s[6]}
        self.regular = {d[0]: [s[0] for s in STORES if s[2] == d[0] and s[0] != DIVERTED_STORE] for d in DEALERS}
        self.people = [(city, n) for city, count in CONSUMERS_PER_CITY.items() for n in range(count)]
        # About a quarter of the consumers buy only in the first week: the members at risk at the end.
        self.early = {p for p in self.people if self.rng.random() < 0.25}
        self.stock: dict[str, list[str]] = {d[0]: [] for d in DEALERS}
        self.unopened: dict[str, list[str]] = {s[0]: [] for s in STORES}
        self.opened: dict[str, list[str]] = {s[0]: [] for s in STORES}
        self.clone_day = max(1, days * 2 // 3)
        self.clone_done = False
        self.diverted = cases["DM-CD"][0]  # the case the Chengdu dealer ships to Chongqing
        self.lottery_day = days - 6 if days >= LOTTERY_MIN_DAYS else None
        # The Guiyang dealer's last case goes to the lottery store and is kept for the winners.
        self.reserved = cases["DM-GZ"][-1] if self.lottery_day is not None else None

    def add(self, at: datetime, kind: str, **args: Any) -> None:
        self.actions.append(Action(at, len(self.actions), kind, args))

    def plan(self) -> list[Action]:
        second = max(1, self.days // 2)
        for d in range(self.days + 1):
            day = self.start + timedelta(days=d)
            for store, *_ in STORES:  # sales first: a store sells what it received on earlier days
                self.sales(d, day, store)
            for dealer, *_, count in DEALERS:  # goods arrive at the dealers in two waves
                half = (count + 1) // 2 if self.days > 1 else count
                arriving = self.cases[dealer][:half] if d == 0 else self.cases[dealer][half:] if d == second else []
                if arriving:
                    self.add(local(day, 9, self.rng.randint(0, 50)), "dealer_receive", dealer=dealer, codes=arriving)
                    self.stock[dealer].extend(c for c in arriving if c not in (self.diverted, self.reserved))
            self.deliveries(d, day)
            if d == self.lottery_day:
                self.lottery(day)
            self.add(local(day, 23, 30), "day_end", day=day)
        return sorted(self.actions)

    def sales(self, d: int, day: date, store: str) -> None:
        rng = self.rng
        wanted = rng.choice((0, 1, 1, 1, 2, 2, 3))
        for hour in sorted(rng.randint(10, 21) for _ in range(wanted)):
            at = local(day, hour, rng.randint(0, 58))
            bought: list[str] = []
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):  # one to three bottles a customer
                if not self.opened[store]:
                    if not self.unopened[store]:
                        break
                    case = self.unopened[store].pop(0)
                    self.opened[store] = list(self.contents[case])
                    self.add(at - timedelta(minutes=1 + len(bought)), "case_open", store=store, code=case)
                bought.append(self.opened[store].pop(0))
            if not bought:
                return
            seller = "guide" if store in self.guided and rng.random() < 0.5 else "store"
            self.add(at, "sale", store=store, seller=seller, codes=bought)
            self.checks(d, at, store, bought)

    def checks(self, d: int, sold_at: datetime, store: str, bottles: list[str]) -> None:
        rng, city = self.rng, self.city_of[store]
        choices = [p for p in self.people if p[0] == city and (d <= 7 or p not in self.early)]
        who = rng.choice(choices) if choices and rng.random() < 0.85 else None  # some check without signing in
        lat, lon = self.place_of[store]
        for bottle in bottles:
            if rng.random() > 0.75:
                continue  # opened without checking
            checked = sold_at + timedelta(minutes=rng.randint(20, 36 * 60))
            where = (lat + rng.uniform(-0.03, 0.03), lon + rng.uniform(-0.03, 0.03))
            self.add(checked, "verify", code=bottle, who=who, where=where)
            if who is not None and rng.random() < 0.06:  # checked again, days later
                self.add(checked + timedelta(days=rng.randint(1, 3)), "verify", code=bottle, who=who, where=where)
            if not self.clone_done and d >= self.clone_day and city == "上海":
                self.clone_done = True  # the same label, copied, checked in Beijing minutes later
                self.add(checked + timedelta(minutes=9), "verify", code=bottle, who=None, where=CLONE_PLACE)

    def lottery(self, day: date) -> None:
        """The session is set up the day before; entries during the day, the draw in the evening (the
        winners' orders come with the day's jobs); the next day the store opens the kept case, the
        winners pay (one does not) and pick their bottles up."""
        assert self.reserved is not None
        before, after = day - timedelta(days=1), day + timedelta(days=1)
        self.add(local(before, 12), "lottery_setup", opens_at=local(day, 10), closes_at=local(day, 20))
        self.add(local(before, 16), "ship", dealer="DM-GZ", store=LOTTERY_STORE, codes=[self.reserved])
        self.add(local(before, 17, 30), "store_receive", store=LOTTERY_STORE, codes=[self.reserved])
        entrants = [p for p in self.people if p[0] in ("贵阳", "遵义")][:LOTTERY_ENTRANTS]
        for n, who in enumerate(entrants):
            self.add(local(day, 10 + n % 9, self.rng.randint(0, 58)), "lottery_enter", who=who, number=n)
        self.add(local(day, 20, 30), "lottery_draw")
        self.add(local(after, 9), "case_open", store=LOTTERY_STORE, code=self.reserved)
        self.add(local(after, 11), "lottery_pay")
        self.add(local(after, 16), "lottery_pickup", bottles=list(self.contents[self.reserved]))

    def deliveries(self, d: int, day: date) -> None:
        rng = self.rng
        for dealer, *_ in DEALERS:
            for store in self.regular[dealer]:
                on_hand = len(self.opened[store]) + BOTTLES_PER_CASE * len(self.unopened[store])
                if self.stock[dealer] and on_hand < 4:
                    count = min(len(self.stock[dealer]), rng.choice((1, 2)))
                    shipped = [self.stock[dealer].pop(0) for _ in range(count)]
                    self.ship(day, dealer, store, shipped, (10, rng.randint(0, 59)), (15, rng.randint(0, 59)))
        if d == min(3, self.days):  # one case to a store outside the territory
            self.ship(day, "DM-CD", DIVERTED_STORE, [self.diverted], (11, 5), (16, 20))

    def ship(
        self, day: date, dealer: str, store: str, codes_: list[str], out: tuple[int, int], back: tuple[int, int]
    ) -> None:
        self.add(local(day, *out), "ship", dealer=dealer, store=store, codes=codes_)
        self.add(local(day, *back), "store_receive", store=store, codes=codes_)
        self.unopened[store].extend(codes_)


def plan_month(days: int, start: date, cases: dict[str, list[str]], contents: dict[str, list[str]]) -> list[Action]:
    """Every step of the month in time order; the days run from `start` to `start + days`."""
    return _Planner(days, start, cases, contents).plan()


# --- execution ------------------------------------------------------------------------------------


class _Inbox:
    """An SMS sender that keeps the last sign-in code (the demo consumers read their own texts)."""

    name = "demo"

    def __init__(self) -> None:
        self.last = ""

    async def send(self, session: AsyncSession, *, tenant_id: uuid.UUID, phone_e164: str, text: str) -> None:
        found = re.search(r"\d{6}", text)
        self.last = found.group(0) if found else ""


@dataclass
class _World:
    runtime: Runtime
    tenant: Tenant
    owner: Principal
    stores: dict[str, uuid.UUID] = field(default_factory=dict)
    partners: dict[str, Principal] = field(default_factory=dict)  # "dealer:DM-GZ", "store:…", "guide:…"
    consumers: dict[tuple[str, int], uuid.UUID] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict)
    inbox: _Inbox = field(default_factory=_Inbox)
    product_id: uuid.UUID | None = None
    lottery: tuple[uuid.UUID, uuid.UUID] | None = None  # session, lottery store
    verified: set[uuid.UUID] = field(default_factory=set)


async def _run_jobs(runtime: Runtime) -> None:
    worker = Worker(runtime.db)
    while await worker.run_once():
        pass


async def _serials(session: AsyncSession, batch_id: uuid.UUID) -> list[str]:
    batch = await session.scalar(select(CodeBatch).where(CodeBatch.id == batch_id))
    assert batch is not None, "requested above"
    assert batch.first_code_id is not None, "generated above"
    last = batch.first_code_id + batch.quantity
    found = await session.scalars(
        select(Code.serial).where(Code.id >= batch.first_code_id, Code.id < last).order_by(Code.id)
    )
    return [str(serial) for serial in found]


async def _setup_codes(world: _World, product_id: uuid.UUID) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The month's cases and bottles: requested, generated, commissioned with a lot, packed six a case."""
    runtime, tenant, actor = world.runtime, world.tenant, world.owner
    total_cases = sum(d[4] for d in DEALERS)
    async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
        lot = await catalog.do_create_lot(
            session,
            actor,
            product_id,
            LotDraft(lot_number=LOT_NUMBER, produced_on=utcnow().date() - timedelta(days=20), factory="仁怀一厂"),
        )
        items, _ = await codes.do_request_batch(
            session,
            runtime.crypto,
            actor,
            codes.BatchRequest(product_id, "item", total_cases * BOTTLES_PER_CASE, ITEM_NOTE),
            public_url=runtime.settings.public_url,
        )
        boxes, _ = await codes.do_request_batch(
            session,
            runtime.crypto,
            actor,
            codes.BatchRequest(product_id, "case", total_cases, CASE_NOTE),
            public_url=runtime.settings.public_url,
        )
        lot_id, batch_ids = lot.id, (items.id, boxes.id)
    for batch_id in batch_ids:
        await generate_batch(runtime.db, tenant.id, batch_id)
    async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
        context = custody.StepContext(actor, read_point="仁怀一厂 / 2 号线")
        await custody.do_commission(session, context, batch_id=batch_ids[0], lot_id=lot_id)
        await custody.do_commission(session, context, batch_id=batch_ids[1])
        bottles = await _serials(session, batch_ids[0])
        sscc = await _serials(session, batch_ids[1])
        contents = {case: bottles[i * BOTTLES_PER_CASE : (i + 1) * BOTTLES_PER_CASE] for i, case in enumerate(sscc)}
        packing = [custody.CaseRequest(case, inside) for case, inside in contents.items()]
        await custody.do_pack_many(session, custody.StepContext(actor), packing)
        key = await codes.pin_key(session, runtime.crypto, int(items.pin_key_version or 1))
        world.pins = {serial: pin_for(key, serial) for serial in bottles}
    per_dealer: dict[str, list[str]] = {}
    at = 0
    for code, *_, count in DEALERS:
        per_dealer[code] = sscc[at : at + count]
        at += count
    return per_dealer, contents


async def _setup_channel(world: _World) -> None:
    runtime, actor, crypto = world.runtime, world.owner, world.runtime.crypto
    async with runtime.db.unit_of_work(tenant_id=world.tenant.id) as session:
        accounts: list[tuple[str, str, uuid.UUID, str]] = []
        for n, (code, name, contact, regions, _) in enumerate(DEALERS, start=1):
            dealer = await channel.do_create_dealer(
                session,
                actor,
                crypto,
                DealerDraft(
                    code=code, name=name, contact_name=contact, phone=f"+86139005{n:02d}000", region_codes=regions
                ),
            )
            accounts.append((f"dealer:{code}", "dealer", dealer.id, f"+86139005{n:02d}001"))
        for n, (code, name, dealer_code, lat, lon, city, guide_name) in enumerate(STORES, start=1):
            store = await channel.do_create_store(
                session,
                actor,
                crypto,
                StoreDraft(
                    code=code, name=name, dealer_code=dealer_code, address=f"{city}市", latitude=lat, longitude=lon
                ),
            )
            world.stores[code] = store.id
            accounts.append((f"store:{code}", "store", store.id, f"+86139006{n:02d}001"))
            if guide_name:
                guide = await channel.do_create_guide(
                    session, actor, crypto, store.id, GuideDraft(name=guide_name, phone=f"+86139007{n:02d}001")
                )
                accounts.append((f"guide:{code}", "guide", guide.id, f"+86139007{n:02d}001"))
        for key, role, target, phone in accounts:
            account = await partners.do_create_partner(
                session,
                actor,
                crypto,
                partners.PartnerDraft(role=role, target_id=target, phone=phone, display_name=key),
            )
            world.partners[key] = partners.partner_principal(account)  # as if signed in


async def _setup_rewards(world: _World, start: datetime, days: int) -> None:
    async with world.runtime.db.unit_of_work(tenant_id=world.tenant.id) as session:
        pool = await rewards.do_create_pool(
            session, world.owner, rewards.PoolDraft(code=POOL_CODE, name="开瓶红包与门店动销", campaign="秋季动销")
        )
        await rewards.do_fund_pool(session, world.owner, pool.id, POOL_FUNDED_FEN, idempotency_key="demo-month")
        for name, kind, role, amount in (
            ("开瓶红包 ¥1.88", "consumer_open", "consumer", RED_PACKET_FEN),
            ("门店动销奖 ¥5", "sale", "store", SALE_REWARD_FEN),
        ):
            await rewards.do_create_rule(
                session,
                world.owner,
                rewards.RuleDraft(
                    name=name,
                    event_kind=kind,
                    role=role,
                    pool_id=pool.id,
                    valid_from=start,
                    valid_to=start + timedelta(days=days + 90),
                    amount_fen=amount,
                ),
            )
        # Baijiu buyers come back within weeks: the brand watches its members closer than the defaults.
        await lifecycle.do_set_thresholds(
            session,
            world.tenant.id,
            lifecycle.Thresholds(new_days=7, at_risk_days=10, dormant_days=20, churned_days=60),
        )


async def _consumer(world: _World, who: tuple[str, int]) -> uuid.UUID:
    """The consumer's account, signed in with a text message the first time they check a bottle."""
    found = world.consumers.get(who)
    if found is not None:
        return found
    number = len(world.consumers) + 1
    phone = f"+8618800{number:06d}"
    async with world.runtime.db.unit_of_work(tenant_id=world.tenant.id) as session:
        await consumers.do_request_otp(
            session,
            crypto=world.runtime.crypto,
            limiter=world.runtime.limiter,
            sms=world.inbox,
            tenant=world.tenant,
            phone=phone,
            ip=f"demo-consumer-{number}",
            ttl_seconds=300,
        )
        signed = await consumers.do_verify_otp(
            session, crypto=world.runtime.crypto, tenant=world.tenant, phone=phone, code=world.inbox.last
        )
    world.consumers[who] = signed.consumer.id
    return signed.consumer.id


async def _verify(world: _World, action: Action) -> None:
    """A PIN check as the H5 page makes it (authenticity.api.check), from the consumer's phone."""
    who = action.args["who"]
    consumer_id = await _consumer(world, who) if who is not None else None
    device = f"{who[0]}-{who[1]}" if who is not None else f"anonymous-{action.seq}"
    crypto = world.runtime.crypto
    lat, lon = action.args["where"]
    serial = action.args["code"]
    async with world.runtime.db.unit_of_work() as session:
        resolved = await resolver.resolve(session, resolver.parse(serial))
        now = utcnow()
        location = auth_rules.check_location(now, lat, lon, 25.0)
        ctx = auth_service.CheckContext(
            occurred_at=now,
            location=location,
            accuracy_m=25.0,
            region=verification.region_of(location),
            network_hash=crypto.lookup_hash(f"net:{device}", purpose="authenticity.network")[:32],
            client_hash=crypto.lookup_hash(f"client:{device}", purpose="authenticity.client")[:32],
            consumer_id=consumer_id,
            ua_class=auth_models.UA_WECHAT,
        )
        await verification.do_check_pin(session, world.runtime, resolved, world.pins[serial], ctx)


def _id_number(n: int) -> str:
    """A well-formed resident ID number (Guiyang's Nanming district, born from 1985) for the n-th entrant."""
    body = f"520102{date(1985, 1, 1) + timedelta(days=397 * n):%Y%m%d}{100 + n:03d}"
    return body + ric.calc_check_digit(body + "0")


async def _lottery_setup(world: _World, action: Action) -> None:
    runtime, crypto = world.runtime, world.runtime.crypto
    assert world.product_id is not None
    lat, lon = next((s[3], s[4]) for s in STORES if s[0] == LOTTERY_STORE)
    async with runtime.db.unit_of_work(tenant_id=world.tenant.id) as session:
        store = await lottery.do_create_store(
            session,
            code=LOTTERY_CODE,
            name="贵阳观山湖名酒行 申购提货点",
            city="贵阳",
            latitude=lat,
            longitude=lon,
            channel_store_id=world.stores[LOTTERY_STORE],
        )
        drawn = await lottery.do_create_session(
            session,
            crypto,
            title="飞天 53%vol 500ml 每日申购",
            opens_at=action.args["opens_at"],
            closes_at=action.args["closes_at"],
        )
        stock = lottery.StockItem(store.id, world.product_id, LOTTERY_BOTTLES, price_fen=LOTTERY_PRICE_FEN)
        await lottery.do_set_stock(session, drawn, [stock])
        await lottery.do_commit(session, drawn)
        world.lottery = (drawn.id, store.id)


async def _lottery_enter(world: _World, action: Action) -> None:
    """An entrant verifies their identity once (the sandbox authority), then enters."""
    assert world.lottery is not None
    assert world.product_id is not None
    consumer_id = await _consumer(world, action.args["who"])
    runtime, number = world.runtime, int(action.args["number"])
    async with runtime.db.unit_of_work(tenant_id=world.tenant.id) as session:
        if consumer_id not in world.verified:
            await identity.do_verify_identity(
                session,
                crypto=runtime.crypto,
                limiter=runtime.limiter,
                verifier=SandboxIdentityVerifier(),
                tenant_id=world.tenant.id,
                consumer_id=consumer_id,
                name=ENTRANT_NAMES[number % len(ENTRANT_NAMES)],
                id_number=_id_number(number),
            )
            world.verified.add(consumer_id)
        session_id, store_id = world.lottery
        await lottery.do_enter(
            session,
            runtime.crypto,
            session_id=session_id,
            consumer_id=consumer_id,
            product_id=world.product_id,
            store_id=store_id,
        )


async def _lottery_draw(world: _World) -> None:
    assert world.lottery is not None
    for step in ("close", "draw"):
        async with world.runtime.db.unit_of_work(tenant_id=world.tenant.id) as session:
            drawn = await lottery.get_session(session, world.lottery[0])
            if step == "close":
                await lottery.do_close(session, drawn)
            else:
                await lottery.do_draw(session, world.runtime.crypto, drawn, beacon=None)


async def _lottery_orders(world: _World, state: str) -> list[uuid.UUID]:
    """The ids of the lottery's orders in `state`, by order number."""
    async with world.runtime.db.read_only(tenant_id=world.tenant.id) as session:
        found = await session.scalars(
            select(SalesOrder.id)
            .where(SalesOrder.source == "lottery", SalesOrder.state == state)
            .order_by(SalesOrder.order_no)
        )
        return list(found)


async def _lottery_pay(world: _World) -> None:
    """Every winner but the last pays through the sandbox provider (the last lets the deadline pass)."""
    runtime = world.runtime
    provider = payments.provider_for(payments.SANDBOX, runtime.crypto, world.tenant.id)
    for order_id in (await _lottery_orders(world, sales_rules.PENDING_PAYMENT))[:-1]:
        async with runtime.db.unit_of_work(tenant_id=world.tenant.id) as session:
            order = await sales.get_order(session, order_id)
            payment, _request = await payments.do_start_payment(session, provider, order, tenant_slug=world.tenant.slug)
            body, signature = provider.notification_for(payment)
            await payments.do_handle_notification(session, provider, body, signature)


async def _lottery_pickup(world: _World, action: Action) -> None:
    """The store's clerk scans each paid winner's pickup code and hands a bottle of the kept case over."""
    runtime, bottles = world.runtime, list(action.args["bottles"])
    clerk = world.partners[f"store:{LOTTERY_STORE}"]
    for order_id in await _lottery_orders(world, sales_rules.READY_FOR_PICKUP):
        async with runtime.db.unit_of_work(tenant_id=world.tenant.id) as session:
            code = pickup.issue_code(runtime.crypto, await sales.get_order(session, order_id))
            await pickup.do_hand_over(
                session,
                runtime.crypto,
                world.tenant.id,
                code.token,
                [bottles.pop(0)],
                store_id=world.stores[LOTTERY_STORE],
                partner_account_id=clerk.id,
            )


async def _scan(world: _World, who: str, action: str, codes_: list[str], **extra: Any) -> None:
    async with world.runtime.db.unit_of_work(tenant_id=world.tenant.id) as session:
        await scans.do_scan(
            session, world.partners[who], world.runtime.crypto, scans.ScanRequest(action=action, codes=codes_, **extra)
        )


async def _run(world: _World, action: Action) -> None:
    args = action.args
    place = {s[0]: (s[3], s[4]) for s in STORES}
    if action.kind == "dealer_receive":
        await _scan(world, f"dealer:{args['dealer']}", DEALER_RECEIVE, args["codes"])
    elif action.kind == "ship":
        to = world.stores[args["store"]]
        await _scan(world, f"dealer:{args['dealer']}", SHIP, args["codes"], to_store_id=to)
    elif action.kind in ("store_receive", "case_open", "sale"):
        store = args["store"]
        who = f"{args.get('seller', 'store')}:{store}"
        lat, lon = place[store]
        codes_ = args["codes"] if "codes" in args else [args["code"]]
        await _scan(world, who, action.kind, codes_, latitude=lat, longitude=lon, accuracy_m=15.0)
    elif action.kind == "verify":
        await _verify(world, action)
    elif action.kind == "lottery_setup":
        await _lottery_setup(world, action)
    elif action.kind == "lottery_enter":
        await _lottery_enter(world, action)
    elif action.kind == "lottery_draw":
        await _lottery_draw(world)
    elif action.kind == "lottery_pay":
        await _lottery_pay(world)
    elif action.kind == "lottery_pickup":
        await _lottery_pickup(world, action)
    elif action.kind == "day_end":
        await _run_jobs(world.runtime)
        async with world.runtime.db.unit_of_work(tenant_id=world.tenant.id) as session:
            await lifecycle.do_run_lifecycle(session, world.tenant.id, on=args["day"])


async def exists(runtime: Runtime, tenant: Tenant) -> bool:
    async with runtime.db.read_only(tenant_id=tenant.id) as session:
        return await session.scalar(select(Dealer.id).where(Dealer.code == DEALERS[0][0])) is not None


async def ensure_month(
    runtime: Runtime,
    tenant: Tenant,
    product_gtin: str,
    *,
    days: int = 30,
    progress: Callable[[int, int], None] | None = None,
) -> MonthSummary | None:
    """Generate `days` days of the brand's life up to now; None when the month exists already (or days < 1).
    `progress(done, total)` is told after every step."""
    if days < 1 or await exists(runtime, tenant):
        return None
    now = utcnow()
    today = now.astimezone(CST).date()
    start_day = today - timedelta(days=days)
    start = local(start_day, 8)
    world = _World(runtime, tenant, cli_principal(tenant, role=Role.OWNER))
    with travel(start):
        async with runtime.db.read_only(tenant_id=tenant.id) as session:
            product_id = await session.scalar(select(Product.id).where(Product.gtin == product_gtin))
        assert product_id is not None, "the demo product is created before its month"
        world.product_id = product_id
        per_dealer, contents = await _setup_codes(world, product_id)
        await _setup_channel(world)
        await _setup_rewards(world, start, days)
    actions = [a for a in plan_month(days, start_day, per_dealer, contents) if a.at < now - timedelta(minutes=1)]
    for done, action in enumerate(actions, start=1):
        with travel(action.at):
            await _run(world, action)
        if progress is not None:
            progress(done, len(actions))
    await _run_jobs(runtime)
    async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
        await lifecycle.do_run_lifecycle(session, tenant.id, on=today)
    return await summary(runtime, tenant)


async def _days(session: AsyncSession) -> int:
    """The days with a channel scan."""
    times = await session.scalars(select(ChannelScan.occurred_at))
    return len({at.astimezone(CST).date() if at.tzinfo else at.date() for at in times})


async def summary(runtime: Runtime, tenant: Tenant) -> MonthSummary:
    """What the month left in the database, counted from its rows."""
    async with runtime.db.read_only(tenant_id=tenant.id) as session:

        async def count(model: Any, *where: Any) -> int:
            return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        batches = {
            b.note: b
            for b in await session.scalars(select(CodeBatch).where(CodeBatch.note.in_((ITEM_NOTE, CASE_NOTE))))
        }
        paid = await session.scalar(
            select(func.coalesce(func.sum(RewardGrant.amount_fen), 0)).where(RewardGrant.status == PAID)
        )
        return MonthSummary(
            days=await _days(session),
            dealers=await count(Dealer),
            stores=await count(Store),
            guides=await count(Guide),
            partners=await count(PartnerAccount),
            bottles=batches[ITEM_NOTE].quantity if ITEM_NOTE in batches else 0,
            cases=batches[CASE_NOTE].quantity if CASE_NOTE in batches else 0,
            channel_scans=await count(ChannelScan),
            verifications=await count(auth_models.Scan, auth_models.Scan.kind == auth_models.KIND_PIN_OK),
            consumers=await count(Consumer),
            members=await count(Member),
            rewards_paid_fen=int(paid or 0),
            diversion_alerts=await count(DiversionAlert),
            clone_alerts=await count(auth_models.CloneAlert),
            lottery_entries=await count(LotteryEntry),
            orders=await count(SalesOrder),
            orders_paid=await count(SalesOrder, SalesOrder.paid_at.is_not(None)),
            pickups=await count(SalesOrder, SalesOrder.state == sales_rules.PICKED_UP),
        )
