"""Invariant 1: no tenant can read or change another tenant's data, through any endpoint.

The test walks *every* registered route of the app — API, console and H5 — with a second brand's
credentials aimed at the first brand's resources, and expects refusal; then it checks that nothing
of the first brand changed. New routes are covered automatically; a route with a path parameter
the walker does not know fails the test until a value for it is added to `PATH_VALUES` below.
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from PIL import Image
from sqlalchemy import func, select

from tests.factories import Brand, bearer, console_login, make_brand, make_token, make_user, system_actor
from tests.ledger_factories import make_books
from tests.rewards_factories import item_event as reward_event
from tests.rewards_factories import make_pool, make_rule
from tests.rewards_factories import publish as reward_publish
from tests.sales_factories import draft as sales_draft
from zhongtai.authenticity import photos as photo_rules
from zhongtai.authenticity import reports
from zhongtai.authenticity.models import CloneAlert
from zhongtai.catalog import service as catalog
from zhongtai.catalog.models import Lot, Product
from zhongtai.catalog.rules import LotDraft, ProductDraft
from zhongtai.channel import partners as channel_partners
from zhongtai.channel import rules as channel_rules
from zhongtai.channel import service as channel
from zhongtai.channel.models import Dealer, Guide, PartnerAccount, Store
from zhongtai.codes import service as codes
from zhongtai.codes.generation import generate_batch
from zhongtai.codes.models import Code, CodeBatch
from zhongtai.core import jobs
from zhongtai.core.clock import utcnow
from zhongtai.core.consumers import PHONE_PURPOSE
from zhongtai.core.crypto import mask_phone
from zhongtai.core.jobs import JobContext
from zhongtai.core.models import ApiToken, AuditEvent, Consumer, OutboxJob, Tenant, User
from zhongtai.core.runtime import Runtime
from zhongtai.flashsale import rules as flashsale_rules
from zhongtai.flashsale import service as flashsale
from zhongtai.flashsale.fastpath import state_of as flashsale_state_of
from zhongtai.flashsale.models import FlashSale
from zhongtai.ledger import service as ledger
from zhongtai.lottery import service as lottery
from zhongtai.lottery.models import LotteryEntry, LotterySession, LotteryStock
from zhongtai.members import duplicates, loyalty, oneid
from zhongtai.members import segments as member_segments
from zhongtai.members import tags as member_tags
from zhongtai.members.duplicate_models import MemberDuplicateSuggestion
from zhongtai.members.loyalty_models import LoyaltyMembership, LoyaltyProgram
from zhongtai.members.loyalty_rules import TierDraft
from zhongtai.members.models import Member, MemberMerge
from zhongtai.members.segment_models import MemberFacts, MemberSegment
from zhongtai.rewards import payouts
from zhongtai.rewards import service as reward_service
from zhongtai.rewards.models import FeePool, RewardGrant, RewardRule, Withdrawal
from zhongtai.sales import payments
from zhongtai.sales import service as sales
from zhongtai.sales.models import SalesOrder, SalesPayment
from zhongtai.trace import capture as epcis_capture
from zhongtai.trace.models import TraceEvent

ISOLATION_TOPIC = "tests.isolation.noop"


@jobs.job_handler(ISOLATION_TOPIC)
async def _noop(ctx: JobContext) -> None:
    return None


# Routes anyone may call, with the reason. Everything else must refuse a foreign tenant.
PUBLIC_ROUTES = {
    "/healthz": "liveness, no data",
    "/readyz": "readiness, no data",
    "/metrics": "process metrics, no tenant data; 404 without ZT_METRICS_TOKEN, else 401 without it "
    "(tests/test_core_metrics.py)",
    "/openapi.json": "API description",
    "/docs": "API explorer",
    "/docs/oauth2-redirect": "API explorer",
    "/console/login": "sign-in form",
    "/console/lang/{locale}": "language cookie",
    "/h5/{tenant_slug}/login": "a brand's public consumer sign-in page",
    "/h5/{tenant_slug}/dev/sms": "development-only inbox, 404 outside development",
    "/api/v1/public/{tenant_slug}/otp": "a brand's public consumer sign-in",
    "/api/v1/public/{tenant_slug}/sessions": "a brand's public consumer sign-in",
    "/api/v1/channel/public/{tenant_slug}/partner/otp": "a brand's public partner sign-in",
    "/h5/{tenant_slug}/partner": "a brand's public partner sign-in page",
    "/h5/{tenant_slug}/partner/me": "the partner page shell; its data needs the partner's token",
    "/api/v1/channel/public/{tenant_slug}/partner/sessions": "a brand's public partner sign-in",
    # Public by design: consumers and auditors verify without an account; proofs reveal only hashes.
    "/epcis/log/{tenant_slug}/checkpoint": "a brand's signed tree head (public by design: only hashes)",
    "/epcis/log/{tenant_slug}/checkpoints": "a brand's signed tree heads (public by design: only hashes)",
    "/epcis/log/{tenant_slug}/public-key": "a brand's checkpoint key (public by design)",
    "/epcis/log/{tenant_slug}/proof/inclusion": "a Merkle inclusion proof (public by design: only hashes)",
    "/epcis/log/{tenant_slug}/proof/consistency": "a Merkle consistency proof (public by design: only hashes)",
    "/epcis/log/{tenant_slug}/verify-demo": "a static page running the public verifier script",
    "/h5/{tenant_slug}/trace-data": "a code's history for the consumer page (public by design, no operators)",
    "/h5/{tenant_slug}/lottery": "a brand's public reservations page (data comes from the member's API calls)",
    "/h5/{tenant_slug}/me": "the member centre shell; its data comes from the member's API calls",
    "/h5/{tenant_slug}/wallet": "the consumer's wallet shell; its data needs the consumer's token",
    "/api/v1/public/{tenant_slug}/lottery/{session_id}/commitment": "a lottery's commitment (public by design)",
    "/api/v1/public/{tenant_slug}/lottery/{session_id}/draw": "a lottery's draw data (public by design, pseudonymous)",
    # The consumer's scan: the Digital Link resolver and the PIN check answer anyone holding the code.
    "/01/{gtin}/21/{serial}": "the consumer scan page of a printed code (public by design)",
    "/01/{gtin}/10/{lot}/21/{serial}": "the consumer scan page of a printed code (public by design)",
    "/00/{sscc}": "the consumer scan page of a printed logistic unit (public by design)",
    "/s/{serial}": "legacy short link: redirect to the Digital Link",
    "/c/{serial}": "legacy short link: redirect to the Digital Link",
    "/01/{rest:path}": "unreadable Digital Links: an error page",
    "/00/{rest:path}": "unreadable Digital Links: an error page",
    "/api/v1/authenticity/verify": "the consumer's PIN check of a printed code (public by design, limited)",
    # Anyone may report a suspected fake to a brand; nothing of the brand is shown back.
    "/api/v1/public/{tenant_slug}/counterfeit-reports": "a brand's public counterfeit-report submission",
    "/h5/{tenant_slug}/report": "a brand's public counterfeit-report form",
    "/h5/{tenant_slug}/report/done": "the receipt page after a counterfeit report (echoes the reference only)",
    "/api/v1/flashsale/sales/{sale_id}/buy": "the buy fast path: only a pass signed for this sale and member buys "
    "(401 otherwise; tests/test_flashsale.py)",
    # The payment provider's notification: accepted only with the brand's HMAC signature (tested in
    # tests/test_sales_flow.py, including another brand's signature).
    "/api/v1/public/{tenant_slug}/sales/payments/sandbox/notify": "a payment provider's signed notification",
    "/h5/{tenant_slug}/orders": "the member's orders page shell; its data needs the member's token",
    "/h5/{tenant_slug}/partner/pickup": "the clerk's pickup page shell; its data needs the partner's token",
    "/h5/{tenant_slug}/partner/scan": "the channel scanning page shell; every scan needs the partner's token",
    "/h5/{tenant_slug}/partner/wallet": "the partner's wallet page shell; its data needs the partner's token",
}


@dataclass
class Victim:
    brand: Brand
    other_user: User
    token_id: uuid.UUID
    token_prefix: str
    job_id: int
    consumer: Consumer
    product_id: uuid.UUID
    lot_id: uuid.UUID
    batch_id: uuid.UUID | None = None
    serial: str = ""
    capture_id: str = ""
    lottery_session_id: uuid.UUID | None = None
    lottery_entry_id: uuid.UUID | None = None
    dealer_id: uuid.UUID | None = None
    store_id: uuid.UUID | None = None
    guide_id: uuid.UUID | None = None
    partner_id: uuid.UUID | None = None
    alert_id: uuid.UUID | None = None
    ledger_account_id: uuid.UUID | None = None
    ledger_entry_id: uuid.UUID | None = None
    report_id: uuid.UUID | None = None
    report_photo_id: uuid.UUID | None = None
    report_reference: str = ""
    order_id: uuid.UUID | None = None
    payment_id: uuid.UUID | None = None
    flashsale_id: uuid.UUID | None = None
    reward_pool_id: uuid.UUID | None = None
    reward_rule_id: uuid.UUID | None = None
    reward_grant_id: uuid.UUID | None = None
    payout_batch_id: uuid.UUID | None = None
    member_id: uuid.UUID | None = None
    merge_id: uuid.UUID | None = None
    loyalty_program_id: uuid.UUID | None = None
    duplicate_id: uuid.UUID | None = None
    segment_id: uuid.UUID | None = None

    def secrets(self) -> list[str]:
        """Strings of the victim that must never appear in another tenant's responses."""
        return [
            str(self.brand.id),
            self.brand.owner.email,
            self.other_user.email,
            str(self.other_user.id),
            str(self.token_id),
            self.token_prefix,
            str(self.consumer.id),
            str(self.product_id),
            str(self.lot_id),
            str(self.batch_id),
            self.serial,
            self.capture_id,
            str(self.alert_id),
            VICTIM_EVENT["eventID"],
            str(self.lottery_session_id),
            str(self.lottery_entry_id),
            str(self.dealer_id),
            str(self.store_id),
            str(self.guide_id),
            str(self.partner_id),
            "VICTIM-DEALER",
            "VICTIM-STORE",
            str(self.ledger_account_id),
            str(self.ledger_entry_id),
            "victim-pool",
            str(self.report_id),
            str(self.report_photo_id),
            str(self.member_id),
            str(self.merge_id),
            str(self.loyalty_program_id),
            str(self.segment_id),
            "victim-segment",
            self.report_reference,
            str(self.order_id),
            str(self.payment_id),
            str(self.flashsale_id),
        ]


PATH_VALUES: dict[str, Any] = {
    "user_id": lambda v: v.other_user.id,
    "token_id": lambda v: v.token_id,
    "job_id": lambda v: v.job_id,
    "tenant_id": lambda v: v.brand.id,
    "tenant_slug": lambda v: v.brand.tenant.slug,
    "locale": lambda v: "en",
    "verb": lambda v: "retry",
    "product_id": lambda v: v.product_id,
    "lot_id": lambda v: v.lot_id,
    "alert_id": lambda v: v.alert_id,
    "batch_id": lambda v: v.batch_id,
    "captureID": lambda v: v.capture_id,
    "eventID": lambda v: VICTIM_EVENT["eventID"],
    # Values of the victim's shipment, which the attacker's own captures below do not share.
    "eventType": lambda v: "TransactionEvent",
    "epc": lambda v: VICTIM_SHIPMENT["parentID"],
    "bizStep": lambda v: "shipping",
    "disposition": lambda v: "in_transit",
    "readPoint": lambda v: VICTIM_SHIPMENT["readPoint"]["id"],
    "bizLocation": lambda v: VICTIM_SHIPMENT["bizLocation"]["id"],
    "session_id": lambda v: v.lottery_session_id,
    "entry_id": lambda v: v.lottery_entry_id,
    "dealer_id": lambda v: v.dealer_id,
    "store_id": lambda v: v.store_id,
    "guide_id": lambda v: v.guide_id,
    "partner_id": lambda v: v.partner_id,
    "account_id": lambda v: v.ledger_account_id,
    "ledger_entry_id": lambda v: v.ledger_entry_id,
    "report_id": lambda v: v.report_id,
    "photo_id": lambda v: v.report_photo_id,
    "order_id": lambda v: v.order_id,
    "payment_id": lambda v: v.payment_id,
    "sale_id": lambda v: v.flashsale_id,
    "pool_id": lambda v: v.reward_pool_id,
    "rule_id": lambda v: v.reward_rule_id,
    "grant_id": lambda v: v.reward_grant_id,
    "payout_batch_id": lambda v: v.payout_batch_id,
    "member_id": lambda v: v.member_id,
    "merge_id": lambda v: v.merge_id,
    "program_id": lambda v: v.loyalty_program_id,
    "suggestion_id": lambda v: v.duplicate_id,
    "action": lambda v: "merge",
    "segment_id": lambda v: v.segment_id,
    "tag": lambda v: "victim-tag",
    "purpose": lambda v: "marketing_messages",
    "scope": lambda v: v.product_id,
}

VICTIM_EVENT: dict[str, Any] = {
    "eventID": "urn:uuid:7a1c0000-0000-4000-8000-00000000071c",
    "type": "ObjectEvent",
    "eventTime": "2024-05-01T08:00:00+08:00",
    "eventTimeZoneOffset": "+08:00",
    "epcList": ["urn:epc:id:sgtin:9506000.013435.VICTIM1"],
    "action": "ADD",
    "bizStep": "commissioning",
    "disposition": "active",
    "readPoint": {"id": "urn:epc:id:sgln:9506000.00001.LINE1"},
    "bizLocation": {"id": "urn:epc:id:sgln:9506000.00001.0"},
}
VICTIM_SHIPMENT: dict[str, Any] = {
    "type": "TransactionEvent",
    "eventTime": "2024-05-02T08:00:00+08:00",
    "eventTimeZoneOffset": "+08:00",
    "parentID": "urn:epc:id:sscc:9506000.0000000071",
    "epcList": ["urn:epc:id:sgtin:9506000.013435.VICTIM1"],
    "action": "ADD",
    "bizStep": "shipping",
    "disposition": "in_transit",
    "readPoint": {"id": "urn:epc:id:sgln:9506000.00001.DOCK7"},
    "bizLocation": {"id": "urn:epc:id:sgln:9506000.00002.0"},
    "bizTransactionList": [{"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:9506000000015:PO-71"}],
}
VICTIM_DOCUMENT: dict[str, Any] = {
    "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
    "type": "EPCISDocument",
    "schemaVersion": "2.0",
    "creationDate": "2024-05-01T00:00:00Z",
    "epcisBody": {"eventList": [VICTIM_EVENT, VICTIM_SHIPMENT]},
}

# Bodies that would succeed if the resource were the caller's own, so that a refusal proves isolation
# rather than a validation error.
JSON_BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/api/v1/users/{user_id}"): {"role": "viewer", "is_active": False},
    ("POST", "/api/v1/members/merges/{merge_id}/undo"): {"reason": "hijacked"},
    ("PUT", "/api/v1/loyalty/programs/{program_id}"): {
        "code": "VICTIM-LOYALTY",
        "name": "hijacked",
        "tiers": [{"code": "t", "name": "t", "threshold": 0}],
    },
    ("POST", "/api/v1/members/{member_id}/memberships"): lambda v: {"program_id": str(v.loyalty_program_id)},
    ("PUT", "/api/v1/members/{member_id}/consents/{purpose}"): {"granted": True, "text_version": "hijacked"},
    ("PUT", "/api/v1/consumer/members/me/consents/{purpose}"): {"granted": True, "text_version": "hijacked"},
    ("POST", "/api/v1/members/{member_id}/erase"): {"reason": "hijacked"},
    ("POST", "/api/v1/members/duplicates/{suggestion_id}/merge"): {"reason": "hijacked"},
    ("POST", "/api/v1/members/duplicates/{suggestion_id}/dismiss"): {"reason": "hijacked"},
    ("POST", "/api/v1/members/duplicates/{suggestion_id}/undo"): {"reason": "hijacked"},
    ("PATCH", "/api/v1/members/segments/{segment_id}"): {"name": "hijacked", "expression": "scans >= 0"},
    ("POST", "/api/v1/members/{member_id}/touches"): {"kind": "message", "ref": "hijacked"},
    ("PATCH", "/api/v1/catalog/products/{product_id}"): {"name": "hijacked"},
    ("POST", "/api/v1/catalog/products/{product_id}/lots"): {"lot_number": "HIJACK1"},
    ("PATCH", "/api/v1/catalog/lots/{lot_id}"): {"factory": "hijacked"},
    ("POST", "/api/v1/codes/batches/{batch_id}/void"): {"reason": "hijacked"},
    ("PATCH", "/api/v1/channel/dealers/{dealer_id}"): {"name": "hijacked", "region_codes": []},
    ("PATCH", "/api/v1/channel/stores/{store_id}"): {"name": "hijacked"},
    ("POST", "/api/v1/channel/dealers/{dealer_id}/territory-check"): {"latitude": 23.1, "longitude": 113.3},
    ("POST", "/api/v1/channel/stores/{store_id}/guides"): {"name": "hijacked", "phone": "13900009999"},
    ("PATCH", "/api/v1/channel/guides/{guide_id}"): {"name": "hijacked"},
    ("PATCH", "/api/v1/channel/partners/{partner_id}"): {"is_active": False, "password": "hijacked password"},
    ("POST", "/api/v1/authenticity/clone-alerts/{alert_id}"): {"status": "dismissed", "note": "hijacked"},
    # Steps aimed at the victim's printed codes (the attacker holds a bottle of the victim's brand).
    ("POST", "/api/v1/codes/commission"): lambda v: {"codes": [v.serial]},
    ("POST", "/api/v1/codes/decommission"): lambda v: {"codes": [v.serial], "reason": "hijack"},
    ("POST", "/api/v1/codes/pack"): lambda v: {"parent": v.serial, "children": [v.serial]},
    ("POST", "/api/v1/codes/pack-cases"): lambda v: {"cases": [{"parent": v.serial, "children": [v.serial]}]},
    ("POST", "/api/v1/codes/unpack"): lambda v: {"parent": v.serial},
    ("POST", "/api/v1/codes/repack"): lambda v: {"parent": v.serial, "children": [v.serial]},
    # The victim's event (same canonical hash, another eventID) captured again: it must land in the
    # attacker's own repository only.
    ("POST", "/epcis/capture"): {
        **VICTIM_DOCUMENT,
        "epcisBody": {"eventList": [{**VICTIM_EVENT, "eventID": "urn:uuid:a77ac0e2-0000-4000-8000-000000000001"}]},
    },
    ("PUT", "/api/v1/lottery/sessions/{session_id}/stock"): lambda v: {
        "items": [{"store_id": str(v.lottery_session_id), "product_id": str(v.product_id), "quantity": 1}]
    },
    ("POST", "/api/v1/lottery/sessions/{session_id}/draw"): {"beacon": "hijack"},
    ("POST", "/api/v1/consumer/lottery/sessions/{session_id}/entries"): lambda v: {
        "product_id": str(v.product_id),
        "store_id": str(v.lottery_session_id),
    },
    ("POST", "/api/v1/authenticity/reports/{report_id}/status"): {"status": "investigating"},
    ("PATCH", "/api/v1/rewards/pools/{pool_id}"): {"name": "hijacked", "is_active": False},
    ("POST", "/api/v1/rewards/pools/{pool_id}/fund"): {"amount_fen": 1, "idempotency_key": "hijack-0001"},
    ("PATCH", "/api/v1/rewards/rules/{rule_id}"): {"is_active": False},
    ("POST", "/api/v1/rewards/grants/{grant_id}/release"): {"note": "hijacked"},
    ("POST", "/api/v1/rewards/grants/{grant_id}/reject"): {"note": "hijacked"},
    ("POST", "/api/v1/sales/orders/{order_id}/refund"): {"reason": "hijack"},
    ("POST", "/api/v1/channel/diversion/alerts/{alert_id}/status"): {"status": "dismissed", "note": "hijack"},
    ("PUT", "/api/v1/sales/settlement/rules/{scope}"): {
        "mode": "percent",
        "brand_share": 0,
        "dealer_share": 5000,
        "store_share": 5000,
    },
    ("POST", "/epcis/events"): {
        "@context": VICTIM_DOCUMENT["@context"],
        **VICTIM_EVENT,
        "eventID": "urn:uuid:a77ac0e2-0000-4000-8000-000000000002",
    },
}
FORM_BODIES: dict[str, dict[str, str]] = {
    "/console/members/duplicates/{suggestion_id}/{action}": {"reason": "hijacked"},
    "/console/members/merges/{merge_id}/undo": {"reason": "hijacked"},
    "/console/rewards/pools/{pool_id}/fund": {"amount": "1", "idempotency_key": "hijack"},
    "/console/rewards/rules/{rule_id}/active": {"active": "0"},
    "/console/rewards/grants/{grant_id}/review": {"decision": "release", "note": "hijacked"},
    "/console/users/{user_id}": {"display_name": "hijacked", "role": "viewer", "is_active": "false"},
    "/console/catalog/products/{product_id}": {"gtin": "6901234567892", "name": "hijacked"},
    "/console/catalog/products/{product_id}/lots": {"lot_number": "HIJACK1"},
    "/console/catalog/lots/{lot_id}": {"lot_number": "V1", "factory": "hijacked"},
    "/console/codes/batches/{batch_id}/void": {"reason": "hijacked", "confirm": "1"},
    "/console/authenticity/reports/{report_id}/status": {"status": "investigating", "expected": "new"},
    "/console/channel/dealers/{dealer_id}": {"code": "VICTIM-DEALER", "name": "hijacked"},
    "/console/channel/stores/{store_id}": {"code": "VICTIM-STORE", "name": "hijacked", "dealer_code": "VICTIM-DEALER"},
    "/console/channel/stores/{store_id}/guides": {"name": "hijacked", "phone": "13900009999"},
    "/console/channel/guides/{guide_id}": {"name": "hijacked", "phone": "13900001234", "store_code": "VICTIM-STORE"},
    "/console/channel/partners/{partner_id}": {"action": "disable"},
    "/console/authenticity/alerts/{alert_id}/status": {"status": "investigating", "expected": "open"},
    "/console/channel/diversion/{alert_id}/status": {"status": "dismissed", "note": "hijacked"},
}

PARAM_RE = re.compile(r"{([^}:]+)(?::[^}]+)?}")


async def _make_victim(runtime: Runtime) -> Victim:
    brand = await make_brand(runtime)
    other = await make_user(runtime, brand, "operator")
    await make_token(runtime, brand)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        token = await session.scalar(select(ApiToken))
        assert token is not None
        await jobs.enqueue(session, ISOLATION_TOPIC, {"secret": "victim"})
        phone = "+8613812345678"
        consumer = Consumer(
            phone_ciphertext=runtime.crypto.pii.encrypt(phone, purpose=PHONE_PURPOSE),
            phone_hash=runtime.crypto.lookup_hash(phone, purpose=PHONE_PURPOSE),
            phone_masked=mask_phone(phone),
        )
        session.add(consumer)
        product = await catalog.do_create_product(
            session, system_actor(brand.id), ProductDraft(gtin="6901234567892", name="Victim tea")
        )
        lot = await catalog.do_create_lot(session, system_actor(brand.id), product.id, LotDraft(lot_number="V1"))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        job = await session.scalar(select(OutboxJob))
        assert job is not None
        job.status = "dead"
    victim = Victim(brand, other, token.id, token.prefix, job.id, consumer, product.id, lot.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        batch, _ = await codes.do_request_batch(
            session,
            runtime.crypto,
            system_actor(brand.id),
            codes.BatchRequest(product.id, "item", 3),
            public_url="https://id.victim.example",
        )
    await generate_batch(runtime.db, brand.id, batch.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        victim.batch_id = batch.id
        victim.serial = str(await session.scalar(select(Code.serial).limit(1)))
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        victim.capture_id = str((await epcis_capture.do_receive(session, system_actor(brand.id), VICTIM_DOCUMENT)).id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        store = await lottery.do_create_store(session, code="V1", name="Victim store", city="", latitude=0, longitude=0)
        draft = await lottery.do_create_session(
            session,
            runtime.crypto,
            title="Victim lottery",
            opens_at=utcnow() + timedelta(days=1),
            closes_at=utcnow() + timedelta(days=2),
        )
        await lottery.do_set_stock(session, draft, [lottery.StockItem(store.id, product.id, 1)])
        entry = LotteryEntry(
            session_id=draft.id,
            product_id=product.id,
            store_id=store.id,
            consumer_id=consumer.id,
            identity_hash="0" * 64,
            entrant="0" * 32,
        )
        session.add(entry)
        await session.flush()
        victim.lottery_session_id, victim.lottery_entry_id = draft.id, entry.id
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        sale = await flashsale.do_create_sale(
            session,
            flashsale_rules.SaleDraft(
                title="Victim sale",
                product_id=product.id,
                price_fen=100,
                stock=5,
                starts_at=utcnow(),
                ends_at=utcnow() + timedelta(days=1),
            ),
        )
        await flashsale.do_schedule_sale(session, flashsale_state_of(runtime), sale)
        victim.flashsale_id = sale.id
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        actor = system_actor(brand.id)
        dealer = await channel.do_create_dealer(
            session, actor, runtime.crypto, channel_rules.DealerDraft(code="VICTIM-DEALER", name="Victim dealer")
        )
        channel_store = await channel.do_create_store(
            session,
            actor,
            runtime.crypto,
            channel_rules.StoreDraft(code="VICTIM-STORE", name="Victim store", dealer_code="VICTIM-DEALER"),
        )
        guide = await channel.do_create_guide(
            session,
            actor,
            runtime.crypto,
            channel_store.id,
            channel_rules.GuideDraft(name="Victim guide", phone="13900001234"),
        )
        partner = await channel_partners.do_create_partner(
            session,
            actor,
            runtime.crypto,
            channel_partners.PartnerDraft(
                "store", channel_store.id, "13900004321", "Victim clerk", "victim clerk password"
            ),
        )
        victim.dealer_id, victim.store_id, victim.guide_id, victim.partner_id = (
            dealer.id,
            channel_store.id,
            guide.id,
            partner.id,
        )
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        alert = CloneAlert(
            code_id=1,
            serial=victim.serial,
            first_scan_id=1,
            second_scan_id=2,
            distance_km=1067.0,
            seconds_between=600.0,
            speed_kmh=6402.0,
            evidence={},
        )
        session.add(alert)
        await session.flush()
        victim.alert_id = alert.id
    books = await make_books(runtime, brand.id)
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        victim.ledger_account_id = books.pool
        fund_entry = await ledger.entry_by_key(session, "fund:spring")
        assert fund_entry is not None
        victim.ledger_entry_id = fund_entry.id
        pool = await ledger.get_account(session, books.pool)
        pool.name = "victim-pool"
        report, _ = await reports.do_submit_report(
            session,
            crypto=runtime.crypto,
            store=photo_rules.local_store(runtime.settings.data_dir),
            tenant_id=brand.id,
            checked=reports.check_report(reports.ReportDraft(code=victim.serial, where_bought="victim shop")),
            photos=[photo_rules.check_photo(_victim_photo(), index=1)],
            idempotency_key="key:victim",
        )
        victim.report_id, victim.report_reference = report.id, report.reference
        victim.report_photo_id = (await reports.report_photos(session, report.id))[0].id
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        order = await sales.create_order(session, brand.id, sales_draft("victim-order", consumer_id=consumer.id))
        victim.order_id = order.id
        provider = payments.SandboxPaymentProvider(runtime.crypto, brand.id)
        payment, _ = await payments.do_start_payment(session, provider, order, tenant_slug=brand.tenant.slug)
        victim.payment_id = payment.id
    await _victim_rewards(runtime, victim)
    await _victim_members(runtime, victim)
    return victim


async def _victim_members(runtime: Runtime, victim: Victim) -> None:
    """Two members of the victim merged into one by a verified phone and unionid."""
    actor = system_actor(victim.brand.id)
    phone = oneid.IdentifierInput("phone", "13700001111", verified=True)
    union = oneid.IdentifierInput("wechat_unionid", "victim-union", verified=True)
    async with runtime.db.unit_of_work(tenant_id=victim.brand.id) as session:
        first = await oneid.do_link(session, actor, runtime.crypto, identifiers=[phone], source="pos")
        await oneid.do_link(session, actor, runtime.crypto, identifiers=[union], source="wechat")
        await oneid.do_link(session, actor, runtime.crypto, identifiers=[phone, union], source="pos")
        (merge,) = await oneid.merges_of(session, first.member.id)
        victim.member_id, victim.merge_id = first.member.id, merge.id
        program = await loyalty.do_save_program(
            session, actor, loyalty.ProgramDraft("VICTIM-LOYALTY", "victim", [TierDraft("base", "base", 0)])
        )
        victim.loyalty_program_id = program.id
        twin = oneid.ProfileInput(name="维克多", birthday=date(1990, 1, 2), city="成都")
        for pos in ("V-POS-1", "V-POS-2"):
            await oneid.do_link(
                session,
                actor,
                runtime.crypto,
                identifiers=[oneid.IdentifierInput("pos_member_no", pos, True)],
                profile=twin,
                source="pos",
            )
        await duplicates.do_scan(session, runtime.crypto)
        victim.duplicate_id = await session.scalar(select(MemberDuplicateSuggestion.id))
        await member_tags.do_create_tag(session, "victim-tag", "manual", None)
        await member_tags.do_assign(session, actor, "victim-tag", first.member.id)
        segment = await member_segments.do_create_segment(session, victim.brand.id, "victim-segment", "scans >= 0")
        victim.segment_id = segment.id


async def _victim_rewards(runtime: Runtime, victim: Victim) -> None:
    """A pool and rule, a held red packet (a consumer's second open in a day) and a payout batch."""
    tenant_id = victim.brand.id
    pool = await make_pool(runtime, tenant_id, funded=10_000, code="VICTIM-POOL")
    rule = await make_rule(runtime, tenant_id, pool, role="consumer", amount_fen=100)
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        await reward_service.do_update_risk(session, system_actor(tenant_id), {"consumer_opens_per_day": 1})
    consumer_id = victim.consumer.id
    await reward_publish(runtime, reward_event(tenant_id, 1, consumer_id=consumer_id))
    held = (await reward_publish(runtime, reward_event(tenant_id, 2, consumer_id=consumer_id)))[0]
    assert held["status"] == "held"
    async with runtime.db.unit_of_work(tenant_id=tenant_id) as session:
        await payouts.do_request_withdrawal(
            session,
            runtime.crypto,
            party=f"consumer:{consumer_id}",
            amount_fen=100,
            payee_name="victim payee",
            payee_account="6222020000001111",
            request_key="victim",
        )
        batch = await payouts.do_approve_batch(session, system_actor(tenant_id), runtime.crypto, provider="sandbox")
    victim.reward_pool_id, victim.reward_rule_id = pool.id, rule.id
    victim.reward_grant_id, victim.payout_batch_id = uuid.UUID(held["grant_id"]), batch.id


def _victim_photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format="PNG")
    return out.getvalue()


def _routes(app: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in iter_route_contexts(app.router.routes):
        if route.methods is None:
            continue  # mounted static files
        found.extend(
            (method, str(route.path).replace(":uuid}", "}")) for method in sorted(route.methods) if method != "HEAD"
        )
    # Signing out ends the attacker's console session, so it goes last.
    return sorted(found, key=lambda item: item[1] == "/console/logout")


def _fill(path: str, victim: Victim) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PATH_VALUES:
            pytest.fail(f"route {path}: the isolation walker has no value for path parameter {name!r}; add it")
        return str(PATH_VALUES[name](victim))

    return PARAM_RE.sub(value, path)


async def _snapshot(runtime: Runtime, brand: Brand) -> dict[str, Any]:
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        users = [
            (u.email, u.role, u.is_active, u.display_name)
            for u in await session.scalars(select(User).order_by(User.email))
        ]
        tokens = [(t.name, t.revoked_at) for t in await session.scalars(select(ApiToken).order_by(ApiToken.id))]
        job_states = [(j.id, j.status) for j in await session.scalars(select(OutboxJob).order_by(OutboxJob.id))]
        consumers = await session.scalar(select(func.count()).select_from(Consumer))
        products = [(p.gtin, p.name, p.status) for p in await session.scalars(select(Product).order_by(Product.gtin))]
        lots = [(x.lot_number, x.factory) for x in await session.scalars(select(Lot).order_by(Lot.lot_number))]
        batches = [
            (b.number, b.status, b.voided_count, b.export_count)
            for b in await session.scalars(select(CodeBatch).order_by(CodeBatch.number))
        ]
        code_states = sorted((await session.execute(select(Code.serial, Code.state))).all())
        trace_events = sorted((await session.execute(select(TraceEvent.event_id, TraceEvent.hash_id))).all())
        lotteries = [
            (x.status, x.entries_count, x.committed_at, x.drawn_at)
            for x in await session.scalars(select(LotterySession))
        ]
        lottery_stock = sorted((await session.execute(select(LotteryStock.store_id, LotteryStock.quantity))).all())
        lottery_entries = await session.scalar(select(func.count()).select_from(LotteryEntry))
        flash_sales = [(x.status, x.stock_left) for x in await session.scalars(select(FlashSale))]
        channel_rows = [
            *[(d.code, d.name, d.status) for d in await session.scalars(select(Dealer).order_by(Dealer.code))],
            *[(x.code, x.name, x.status) for x in await session.scalars(select(Store).order_by(Store.code))],
            *[(g.name, g.status) for g in await session.scalars(select(Guide).order_by(Guide.name))],
            *[
                (a.phone_masked, a.is_active, a.password_hash)
                for a in await session.scalars(select(PartnerAccount).order_by(PartnerAccount.phone_hash))
            ],
        ]
        alerts = [(a.id, a.status, a.note) for a in await session.scalars(select(CloneAlert))]
        report_states = sorted(
            (await session.execute(select(reports.CounterfeitReport.reference, reports.CounterfeitReport.status))).all()
        )
        orders = [
            *sorted((await session.execute(select(SalesOrder.source_ref, SalesOrder.state))).all()),
            *sorted((await session.execute(select(SalesPayment.amount_fen, SalesPayment.status))).all()),
        ]
        reward_rows = [
            *sorted((await session.execute(select(RewardGrant.code_id, RewardGrant.status))).all()),
            *sorted((await session.execute(select(Withdrawal.amount_fen, Withdrawal.status))).all()),
            *sorted((await session.execute(select(RewardRule.name, RewardRule.is_active))).all()),
            *sorted((await session.execute(select(FeePool.code, FeePool.funded_fen, FeePool.is_active))).all()),
        ]
        members = [
            *sorted((await session.execute(select(Member.id, Member.status, Member.merged_into_id))).all()),
            *sorted((await session.execute(select(MemberMerge.id, MemberMerge.undone_at))).all()),
            *sorted((await session.execute(select(LoyaltyProgram.name, LoyaltyProgram.is_active))).all()),
            *sorted((await session.execute(select(LoyaltyMembership.member_id, LoyaltyMembership.tier_id))).all()),
            *sorted(
                (await session.execute(select(MemberDuplicateSuggestion.id, MemberDuplicateSuggestion.status))).all()
            ),
            *sorted((await session.execute(select(MemberSegment.id, MemberSegment.expression))).all()),
            *sorted((await session.execute(select(MemberFacts.member_id, MemberFacts.tags))).all()),
        ]
        tenant = await session.get(Tenant, brand.id)
        assert tenant is not None
        ledger_report = await ledger.recompute_balances(session)
        return {
            "channel": channel_rows,
            "clone_alerts": alerts,
            "rewards": reward_rows,
            "ledger": (ledger_report.ok, ledger_report.lines, ledger_report.accounts),
            "reports": report_states,
            "users": users,
            "tokens": tokens,
            "jobs": job_states,
            "consumers": consumers,
            "products": products,
            "lots": lots,
            "batches": batches,
            "codes": code_states,
            "trace_events": trace_events,
            "lotteries": lotteries,
            "lottery_stock": lottery_stock,
            "lottery_entries": lottery_entries,
            "flash_sales": flash_sales,
            "active": tenant.is_active,
            "orders": orders,
            "members": members,
        }


async def test_every_route_refuses_another_tenant(client: httpx.AsyncClient, runtime: Runtime) -> None:
    victim = await _make_victim(runtime)
    attacker = await make_brand(runtime)
    attacker_token = await make_token(runtime, attacker)
    before = await _snapshot(runtime, victim.brand)
    app = client._transport.app  # type: ignore[attr-defined]

    # The attacker's console session (cookie + CSRF) in a second client.
    transport = httpx.ASGITransport(app=app, client=("10.9.9.9", 4444))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as console:
        csrf = await console_login(console, attacker.owner.email)
        checked = 0
        for method, path in _routes(app):
            if path in PUBLIC_ROUTES:
                continue
            url = _fill(path, victim)
            has_params = "{" in path
            body: Any = None
            if path.startswith("/console"):
                form = dict(FORM_BODIES.get(path, {}), csrf_token=csrf)
                response = await console.request(
                    method,
                    url,
                    data=form if method != "GET" else None,
                    headers={"accept": "text/html", "x-csrf-token": csrf},
                    follow_redirects=False,
                )
            else:
                template = JSON_BODIES.get((method, path))
                body = template(victim) if callable(template) else template
                response = await client.request(method, url, json=body, headers=bearer(attacker_token))
            checked += 1
            where = f"{method} {path} -> {response.status_code}"
            if has_params:
                assert response.status_code in (403, 404), where
            else:
                assert response.status_code < 500, where
            for secret in victim.secrets():
                if secret in url or secret in str(body):
                    continue  # the page may echo what it was asked
                assert secret not in response.text, f"{where} leaked {secret!r}"
        assert checked >= 15, "the walker must have reached the API and console routes"

    assert await _snapshot(runtime, victim.brand) == before, "the victim's data changed"
    async with runtime.db.unit_of_work(tenant_id=victim.brand.id) as session:
        foreign_audit = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.actor_label.contains(attacker.tenant.slug))
        )
    assert foreign_audit == 0, "no audit event of the attacker may land in the victim's log"


async def test_tokens_and_sessions_are_bound_to_their_tenant(client: httpx.AsyncClient, runtime: Runtime) -> None:
    first, second = await make_brand(runtime), await make_brand(runtime)
    first_token, second_token = await make_token(runtime, first), await make_token(runtime, second)
    mine = await client.get("/api/v1/users", headers=bearer(first_token))
    theirs = await client.get("/api/v1/users", headers=bearer(second_token))
    assert [u["email"] for u in mine.json()["items"]] == [first.owner.email]
    assert [u["email"] for u in theirs.json()["items"]] == [second.owner.email]
    other_id = theirs.json()["items"][0]["id"]
    refused = await client.get(f"/api/v1/users/{other_id}", headers=bearer(first_token))
    assert refused.status_code == 404
    assert refused.json()["error"] == "not_found"
