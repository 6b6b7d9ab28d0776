"""Demo data: one brand tenant with an owner, a platform administrator and an all-scopes API token.

Idempotent: a second run keeps what exists and refreshes the passwords it reports only when the
credentials file is missing.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from zhongtai.catalog import service as catalog
from zhongtai.catalog.models import Product
from zhongtai.catalog.rules import LotDraft, ProductDraft
from zhongtai.cli import demo_month
from zhongtai.codes import custody
from zhongtai.codes import service as codes
from zhongtai.codes.generation import generate_batch
from zhongtai.codes.models import Code, CodeBatch
from zhongtai.codes.rules import pin_for
from zhongtai.core import accounts, migrate, tenancy
from zhongtai.core.cli_support import cli_principal
from zhongtai.core.clock import utcnow
from zhongtai.core.models import ApiToken, Tenant, User
from zhongtai.core.passwords import hash_password
from zhongtai.core.permissions import PERMISSIONS, Role
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings
from zhongtai.domains import load_all
from zhongtai.members import duplicates, facts, loyalty, oneid
from zhongtai.members.loyalty import ProgramDraft, RuleDraft
from zhongtai.members.loyalty_models import LoyaltyProgram
from zhongtai.members.loyalty_rules import TierDraft

DEMO_SLUG = "demo-baijiu"
DEMO_NAME = "示例酒业 Demo Baijiu"
OWNER_EMAIL = "owner@demo-baijiu.example"
PLATFORM_EMAIL = "admin@platform.example"
TOKEN_NAME = "demo integration (all scopes)"
DEMO_GTIN = "06901234567892"
DEMO_COMPANY_PREFIX = "6901234"
ITEM_NOTE, CASE_NOTE = "demo bottles", "demo cases"


def all_scopes(tenant: Tenant) -> set[str]:
    return {name for name in PERMISSIONS if name in cli_principal(tenant).permissions}


def _write(path: Path, credentials: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(credentials, handle, ensure_ascii=False, indent=2)


async def ensure_sample_codes(runtime: Runtime, tenant: Tenant) -> dict[str, Any]:
    """A product with a lot, 100 commissioned bottles and 10 cases (the first case packed), so that
    a newcomer has real codes to scan, look up and trace."""
    actor = cli_principal(tenant, role=Role.OWNER)
    async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
        product = await session.scalar(select(Product).where(Product.gtin == DEMO_GTIN))
        if product is None:
            await codes.do_update_settings(
                session,
                actor,
                gs1_company_prefix=DEMO_COMPANY_PREFIX,
                sscc_extension_digit=0,
                resolver_base=None,
            )
            product = await catalog.do_create_product(
                session,
                actor,
                ProductDraft(
                    gtin=DEMO_GTIN,
                    name="示例酱香酒 53%vol 500ml",
                    specification="500ml",  # the bottle's own; the case packaging is items_per_case
                    category="白酒",
                    price=Decimal("1499.00"),
                    items_per_case=6,
                    cases_per_pallet=4,
                ),
            )
            lot = await catalog.do_create_lot(
                session,
                actor,
                product.id,
                LotDraft(lot_number="L20261101", produced_on=date(2026, 11, 1), factory="仁怀一厂", line="3"),
            )
            items, _ = await codes.do_request_batch(
                session,
                runtime.crypto,
                actor,
                codes.BatchRequest(product.id, "item", 100, ITEM_NOTE),
                public_url=runtime.settings.public_url,
            )
            cases, _ = await codes.do_request_batch(
                session,
                runtime.crypto,
                actor,
                codes.BatchRequest(product.id, "case", 10, CASE_NOTE),
                public_url=runtime.settings.public_url,
            )
            batch_ids, lot_id = [items.id, cases.id], lot.id
        else:
            batch_ids, lot_id = [], None
            if product.specification == "500ml × 6":  # demos loaded before: the case packaging was written here
                product.specification = "500ml"
    for batch_id in batch_ids:
        await generate_batch(runtime.db, tenant.id, batch_id)
    async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
        item_batch = await session.scalar(select(CodeBatch).where(CodeBatch.note == ITEM_NOTE))
        case_batch = await session.scalar(select(CodeBatch).where(CodeBatch.note == CASE_NOTE))
        assert item_batch is not None, "the demo bottles were requested above"
        assert case_batch is not None, "the demo cases were requested above"
        if batch_ids:
            context = custody.StepContext(actor, read_point="仁怀一厂 / 3 号线")
            await custody.do_commission(session, context, batch_id=item_batch.id, lot_id=lot_id)
            await custody.do_commission(session, context, batch_id=case_batch.id)
        first_items = list(
            await session.scalars(
                select(Code.serial).where(Code.id >= item_batch.first_code_id).order_by(Code.id).limit(7)
            )
        )
        first_case = await session.scalar(select(Code.serial).where(Code.id == case_batch.first_code_id))
        assert first_case is not None
        if batch_ids:
            await custody.do_pack(session, custody.StepContext(actor), parent_code=first_case, children=first_items[:6])
        key = await codes.pin_key(session, runtime.crypto, int(item_batch.pin_key_version or 1))
        view = await codes.lookup(session, first_items[6])
    return {
        "product_gtin": DEMO_GTIN,
        "item_uri": view.uri,
        "item_serial": first_items[6],
        "item_pin": pin_for(key, first_items[6]),
        "packed_case_sscc": first_case,
        "item_batch_id": str(item_batch.id),
    }


# The demo's members: a loyalty program, earning rules, a few members across channels, and one person
# known twice (a POS card and a Tmall account) for the duplicate review queue.
DEMO_MEMBERS: tuple[tuple[str, str, str, str, date, str], ...] = (
    ("pos_member_no", "POS-100001", "王建国", "贵阳", date(1975, 3, 8), "观山湖区林城东路8号"),
    ("tmall_ouid", "TM-ouid-7781", "王建国", "贵阳", date(1975, 3, 8), "观山湖区林城东路8号2单元"),
    ("jd_pin", "jd_li_min_88", "李敏", "上海", date(1988, 11, 2), "浦东新区世纪大道100号"),
    ("douyin_openid", "dy-open-5521", "陈晓", "杭州", date(1993, 6, 19), "西湖区文三路90号"),
    ("pos_member_no", "POS-100002", "赵磊", "深圳", date(1982, 1, 27), "南山区科技园路1号"),
)


async def ensure_members(runtime: Runtime, tenant: Tenant) -> None:
    """Idempotent: a program with three tiers, points for a first verified scan, a purchase (per yuan)
    and a daily sign-in, the demo members, and a scan for probable duplicates."""
    actor = cli_principal(tenant, role=Role.OWNER)
    async with runtime.db.unit_of_work(tenant_id=tenant.id) as session:
        if await session.scalar(select(LoyaltyProgram.id).where(LoyaltyProgram.code == "MAIN")) is not None:
            return
        await loyalty.do_set_rules(
            session,
            actor,
            [RuleDraft("scan", 50), RuleDraft("purchase", 1), RuleDraft("sign_in", 5, streak_bonus=1, streak_cap=7)],
        )
        tiers = [
            TierDraft("silver", "银卡会员", 0),
            TierDraft("gold", "金卡会员", 50, discount_bp=300, birthday_gift=True),
            TierDraft("black", "黑金会员", 2000, discount_bp=800, birthday_gift=True, free_shipping=True),
        ]
        await loyalty.do_save_program(session, actor, ProgramDraft("MAIN", "示例酒业会员", tiers))
        for kind, value, name, city, birthday, address in DEMO_MEMBERS:
            await oneid.do_link(
                session,
                actor,
                runtime.crypto,
                identifiers=[oneid.IdentifierInput(kind, value, verified=True)],
                profile=oneid.ProfileInput(name=name, city=city, birthday=birthday, address=address),
                source={"pos_member_no": "pos", "tmall_ouid": "tmall", "jd_pin": "jd"}.get(kind, "douyin"),
                reason="demo member",
            )
        await facts.do_sync_facts(session, tenant.id)
        await duplicates.do_scan(session, runtime.crypto)


def _set_month(credentials: dict[str, Any], month: dict[str, Any] | None) -> None:
    if month is None:
        credentials.pop("month", None)
    else:
        credentials["month"] = month


def _password() -> str:
    return "zt-" + secrets.token_urlsafe(12)


async def _ensure_user(session: Any, *, tenant: Tenant, email: str, role: str, name: str, password: str) -> None:
    user = await session.scalar(select(User).where(User.email == email))
    if user is None:
        session.add(
            User(
                tenant_id=tenant.id,
                email=email,
                display_name=name,
                password_hash=hash_password(password),
                role=role,
            )
        )
    else:
        user.password_hash = hash_password(password)
        user.is_active = True
    await session.flush()


async def _ensure_month(
    runtime: Runtime, tenant: Tenant, days: int, progress: Callable[[int, int], None] | None
) -> dict[str, Any] | None:
    """The demo month (generated once, `days` long), counted from its rows; None without one."""
    await demo_month.ensure_month(runtime, tenant, DEMO_GTIN, days=days, progress=progress)
    if not await demo_month.exists(runtime, tenant):
        return None
    return asdict(await demo_month.summary(runtime, tenant))


async def load_demo(
    settings: Settings, *, days: int = 0, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """`days`: how many days of the brand's life to generate up to now (zhongtai.cli.demo_month), once;
    0 for the brand, its codes and members only."""
    load_all()  # every module's permissions, so that the demo token really has every scope
    path = settings.data_dir / "demo-credentials.json"
    await migrate.upgrade_async(settings)
    existing: dict[str, Any] | None = json.loads(path.read_text()) if path.exists() else None
    runtime = Runtime(settings)
    try:
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            platform = await accounts.ensure_platform_tenant(session)
            tenant = await session.scalar(select(Tenant).where(Tenant.slug == DEMO_SLUG))
            if tenant is None:
                tenant = Tenant(slug=DEMO_SLUG, name=DEMO_NAME)
                session.add(tenant)
                await session.flush()
            owner_user = await session.scalar(select(User).where(User.email == OWNER_EMAIL))
            demo_token = await session.scalar(
                select(ApiToken).where(
                    ApiToken.tenant_id == tenant.id,
                    ApiToken.revoked_at.is_(None),
                    ApiToken.name == TOKEN_NAME,
                )
            )
            # A token from an older version may lack the scopes of modules added since.
            token_ok = demo_token is not None and set(demo_token.scopes) >= all_scopes(tenant)
            reuse = existing is not None and owner_user is not None and token_ok
        if reuse and existing is not None:
            # Outside the unit of work above: on SQLite a second, nested writer would wait on the first.
            existing["sample_codes"] = await ensure_sample_codes(runtime, tenant)
            await ensure_members(runtime, tenant)
            _set_month(existing, await _ensure_month(runtime, tenant, days, progress))
            _write(path, existing)
            return existing
        async with runtime.db.unit_of_work(all_tenants=True) as session:
            if demo_token is not None:
                demo_token = await session.merge(demo_token)
                demo_token.revoked_at = utcnow()
            credentials: dict[str, Any] = {
                "base_url": settings.public_url,
                "tenant": {"slug": tenant.slug, "id": str(tenant.id), "name": tenant.name},
                "operator": {"email": OWNER_EMAIL, "password": _password(), "role": "owner"},
                "platform_admin": {"email": PLATFORM_EMAIL, "password": _password(), "role": "owner"},
            }
            await _ensure_user(
                session,
                tenant=tenant,
                email=OWNER_EMAIL,
                role="owner",
                name="示例运营",
                password=credentials["operator"]["password"],
            )
            await _ensure_user(
                session,
                tenant=platform,
                email=PLATFORM_EMAIL,
                role="owner",
                name="Platform admin",
                password=credentials["platform_admin"]["password"],
            )
            tenancy.scope_to_tenant(session, tenant.id)
            actor = cli_principal(tenant)
            issued = await accounts.do_create_token(session, actor, name=TOKEN_NAME, scopes=sorted(all_scopes(tenant)))
            credentials["api_token"] = {
                "token": issued.secret,
                "scopes": issued.token.scopes,
                "usage": "Authorization: Bearer <token>",
            }
            credentials["consumer_login"] = {
                "url": f"{settings.public_url}/h5/{tenant.slug}/login",
                "sms_inbox": f"{settings.public_url}/h5/{tenant.slug}/dev/sms",
            }
        credentials["sample_codes"] = await ensure_sample_codes(runtime, tenant)
        await ensure_members(runtime, tenant)
        _set_month(credentials, await _ensure_month(runtime, tenant, days, progress))
        _write(path, credentials)
        return credentials
    finally:
        await runtime.stop()
