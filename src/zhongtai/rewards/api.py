"""Rewards REST API under `/api/v1/rewards`: rules (with the expected-value preview), fee pools
(funding, usage), rewards and the review queue, risk settings, withdrawals, payout batches and
reconciliation for operators; the wallet, history and withdrawals of a signed-in partner or consumer,
and a consumer claiming the red packets their device received before they signed in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Header, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from zhongtai.authenticity.verification import client_hash_of
from zhongtai.channel import partners as channel_partners
from zhongtai.channel.rules import PARTNER_DEALER, PARTNER_GUIDE
from zhongtai.core.errors import PermissionDenied, ValidationFailed
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.core.schemas import Paged
from zhongtai.core.web import (
    CurrentConsumer,
    CurrentPrincipal,
    DbSession,
    PageDep,
    RuntimeDep,
    rate_limit,
    require,
    writes_on_get,
)
from zhongtai.rewards import grants, payouts, rules, service
from zhongtai.rewards.models import (
    GRANT_STATUSES,
    WITHDRAWAL_STATUSES,
    PayoutBatch,
    RewardGrant,
    RewardRule,
    Withdrawal,
)
from zhongtai.rewards.permissions import REWARDS_FUND, REWARDS_MANAGE, REWARDS_PAYOUT, REWARDS_READ, REWARDS_REVIEW

router = APIRouter(prefix="/api/v1/rewards", tags=["rewards"])
CSV_DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}
}

Reader = Annotated[Principal, Depends(require(REWARDS_READ))]
Manager = Annotated[Principal, Depends(require(REWARDS_MANAGE))]
Funder = Annotated[Principal, Depends(require(REWARDS_FUND))]
Reviewer = Annotated[Principal, Depends(require(REWARDS_REVIEW))]
Payer = Annotated[Principal, Depends(require(REWARDS_PAYOUT))]
IdempotencyKey = Annotated[
    str, Header(alias="Idempotency-Key", min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")
]
OptionalIdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")
]
MAX_RESULT_FILE = 5 * 1024 * 1024
PACKETS_SHOWN = 50


# ------------------------------------------------------------------------------------------- schemas


class PoolIn(BaseModel):
    code: str = Field(max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = Field(max_length=120)
    campaign: str = Field("", max_length=120)
    product_id: uuid.UUID | None = None
    daily_cap_fen: int | None = Field(None, ge=1)
    per_partner_cap_fen: int | None = Field(None, ge=1)


class PoolPatch(BaseModel):
    name: str | None = Field(None, max_length=120)
    daily_cap_fen: int | None = Field(None, ge=1)
    per_partner_cap_fen: int | None = Field(None, ge=1)
    is_active: bool | None = None


class FundIn(BaseModel):
    amount_fen: int = Field(ge=1, le=10**12)
    idempotency_key: str | None = Field(
        None, min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$", description="or the Idempotency-Key header"
    )


class PoolOut(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    campaign: str
    product_id: uuid.UUID | None
    account_id: uuid.UUID
    daily_cap_fen: int | None
    per_partner_cap_fen: int | None
    funded_fen: int
    balance_fen: int
    used_fen: int
    granted_today_fen: int
    is_active: bool

    @classmethod
    def of(cls, usage: service.PoolUsage) -> PoolOut:
        p = usage.pool
        return cls(
            id=p.id,
            code=p.code,
            name=p.name,
            campaign=p.campaign,
            product_id=p.product_id,
            account_id=p.account_id,
            daily_cap_fen=p.daily_cap_fen,
            per_partner_cap_fen=p.per_partner_cap_fen,
            funded_fen=p.funded_fen,
            balance_fen=usage.balance_fen,
            used_fen=usage.used_fen,
            granted_today_fen=usage.granted_today_fen,
            is_active=p.is_active,
        )


class RuleIn(BaseModel):
    name: str = Field(max_length=120)
    event_kind: str = Field(max_length=20)
    role: str = Field(max_length=12)
    pool_id: uuid.UUID
    valid_from: datetime
    valid_to: datetime | None = None
    product_id: uuid.UUID | None = None
    mode: str = Field("fixed", max_length=10)
    amount_fen: int | None = None
    distribution: dict[str, Any] | None = None

    def draft(self) -> service.RuleDraft:
        return service.RuleDraft(**self.model_dump())


class PreviewIn(BaseModel):
    pool_id: uuid.UUID | None = None
    mode: str = Field("fixed", max_length=10)
    amount_fen: int | None = None
    distribution: dict[str, Any] | None = None


class PreviewOut(BaseModel):
    expected_fen: float = Field(description="the mean amount in fen")
    expected_yuan: str
    min_fen: int
    max_fen: int
    pool_balance_fen: int | None
    funds_rewards: int | None = Field(description="rewards of the expected amount the pool's balance pays")


class RulePatch(BaseModel):
    name: str | None = Field(None, max_length=120)
    valid_to: datetime | None = None
    is_active: bool | None = None


class RuleOut(BaseModel):
    id: uuid.UUID
    name: str
    event_kind: str
    role: str
    pool_id: uuid.UUID
    product_id: uuid.UUID | None
    valid_from: datetime
    valid_to: datetime | None
    mode: str
    amount_fen: int | None
    distribution: dict[str, Any]
    expected_fen: float
    min_fen: int
    max_fen: int
    is_active: bool

    @classmethod
    def of(cls, r: RewardRule) -> RuleOut:
        return cls(
            id=r.id,
            name=r.name,
            event_kind=r.event_kind,
            role=r.role,
            pool_id=r.pool_id,
            product_id=r.product_id,
            valid_from=r.valid_from,
            valid_to=r.valid_to,
            mode=r.mode,
            amount_fen=r.amount_fen,
            distribution=r.distribution,
            expected_fen=r.expected_fen,
            min_fen=r.min_fen,
            max_fen=r.max_fen,
            is_active=r.is_active,
        )


class GrantOut(BaseModel):
    id: uuid.UUID
    code_id: int
    event_kind: str
    role: str
    party: str
    amount_fen: int
    status: str
    reason: str
    holds: list[str]
    hold_detail: dict[str, Any]
    pool_id: uuid.UUID | None
    entry_id: uuid.UUID | None
    occurred_at: datetime
    created_at: datetime
    reviewed_by: str | None
    review_note: str

    @classmethod
    def of(cls, g: RewardGrant) -> GrantOut:
        return cls(
            id=g.id,
            code_id=g.code_id,
            event_kind=g.event_kind,
            role=g.role,
            party=_shown_party(g.party),
            amount_fen=g.amount_fen,
            status=g.status,
            reason=g.reason,
            holds=list(g.holds or []),
            hold_detail=g.hold_detail or {},
            pool_id=g.pool_id,
            entry_id=g.entry_id,
            occurred_at=g.occurred_at,
            created_at=g.created_at,
            reviewed_by=g.reviewed_by,
            review_note=g.review_note,
        )


def _shown_party(party: str) -> str:
    """A device is shown by the start of its hash only."""
    kind, _, ident = party.partition(":")
    return f"device:{ident[:8]}…" if kind == "device" else party


class ReviewIn(BaseModel):
    note: str = Field("", max_length=300)


class SettingsOut(BaseModel):
    velocity_per_hour: int
    store_distance_km: float
    consumer_opens_per_day: int
    device_accounts: int
    min_withdrawal_fen: int


class SettingsIn(BaseModel):
    velocity_per_hour: int | None = None
    store_distance_km: float | None = None
    consumer_opens_per_day: int | None = None
    device_accounts: int | None = None
    min_withdrawal_fen: int | None = None


class WithdrawIn(BaseModel):
    amount_fen: int = Field(ge=1, le=10**12)
    payee_name: str = Field(max_length=80)
    payee_account: str = Field(max_length=64, description="bank card number, Alipay or WeChat account")


class WithdrawalOut(BaseModel):
    id: uuid.UUID
    party: str
    amount_fen: int
    payee_name: str
    payee_account: str = Field(description="masked")
    status: str
    batch_id: uuid.UUID | None
    provider_ref: str | None
    failure_reason: str
    created_at: datetime
    settled_at: datetime | None

    @classmethod
    def of(cls, w: Withdrawal) -> WithdrawalOut:
        return cls(
            id=w.id,
            party=_shown_party(w.party),
            amount_fen=w.amount_fen,
            payee_name=w.payee_name,
            payee_account=w.payee_account_masked,
            status=w.status,
            batch_id=w.batch_id,
            provider_ref=w.provider_ref,
            failure_reason=w.failure_reason,
            created_at=w.created_at,
            settled_at=w.settled_at,
        )


class BatchIn(BaseModel):
    provider: str = Field("sandbox", max_length=20, description="sandbox, or csv to export for upload")
    withdrawal_ids: list[uuid.UUID] | None = Field(None, max_length=10_000)


class BatchOut(BaseModel):
    id: uuid.UUID
    provider: str
    status: str
    count: int
    total_fen: int
    paid_fen: int
    failed_fen: int
    approved_by: str
    created_at: datetime
    reconciled_at: datetime | None

    @classmethod
    def of(cls, b: PayoutBatch) -> BatchOut:
        return cls(
            id=b.id,
            provider=b.provider,
            status=b.status,
            count=b.count,
            total_fen=b.total_fen,
            paid_fen=b.paid_fen,
            failed_fen=b.failed_fen,
            approved_by=b.approved_by,
            created_at=b.created_at,
            reconciled_at=b.reconciled_at,
        )


class ReconciledOut(BaseModel):
    paid: int
    failed: int
    already: int
    paid_fen: int
    failed_fen: int


class WalletOut(BaseModel):
    party: str
    balance_fen: int = Field(description="spendable")
    held_fen: int = Field(description="rewards held for review")
    withdrawing_fen: int = Field(description="requested or being paid out")
    min_withdrawal_fen: int
    recent: list[GrantOut]
    pending: list[GrantOut]
    withdrawals: list[WithdrawalOut]


class PacketOut(BaseModel):
    """One red packet in a consumer's wallet: how much, for which bottle, when, and where it stands."""

    id: uuid.UUID
    amount_fen: int
    status: str
    serial: str
    product: str
    created_at: datetime


class ConsumerWalletOut(WalletOut):
    packets: list[PacketOut] = Field(description="the consumer's red packets, newest first")


class ClaimOut(BaseModel):
    claimed: int
    amount_fen: int


# --------------------------------------------------------------------------------------------- pools


def _not_none(body: BaseModel) -> dict[str, Any]:
    return body.model_dump(exclude_unset=True)


@router.get("/pools", response_model=list[PoolOut])
async def list_pools(session: DbSession, _: Reader) -> list[PoolOut]:
    return [PoolOut.of(u) for u in await service.pool_usage(session, await service.list_pools(session))]


@router.post("/pools", response_model=PoolOut, status_code=201)
async def create_pool(body: PoolIn, session: DbSession, actor: Manager) -> PoolOut:
    pool = await service.do_create_pool(session, actor, service.PoolDraft(**body.model_dump()))
    return PoolOut.of((await service.pool_usage(session, [pool]))[0])


@router.get("/pools/{pool_id}", response_model=PoolOut)
async def get_pool(pool_id: uuid.UUID, session: DbSession, _: Reader) -> PoolOut:
    return PoolOut.of((await service.pool_usage(session, [await service.get_pool(session, pool_id)]))[0])


@router.patch("/pools/{pool_id}", response_model=PoolOut)
async def update_pool(pool_id: uuid.UUID, body: PoolPatch, session: DbSession, actor: Manager) -> PoolOut:
    pool = await service.do_update_pool(session, actor, pool_id, _not_none(body))
    return PoolOut.of((await service.pool_usage(session, [pool]))[0])


@router.post("/pools/{pool_id}/fund", response_model=PoolOut)
async def fund_pool(
    pool_id: uuid.UUID, body: FundIn, session: DbSession, actor: Funder, key: OptionalIdempotencyKey = None
) -> PoolOut:
    """Move money from the brand's budget into the pool; the same Idempotency-Key (header, or
    `idempotency_key` in the body) again funds nothing more."""
    pool = await service.get_pool(session, pool_id)
    chosen = key or body.idempotency_key
    if not chosen:
        raise ValidationFailed(
            "Send an Idempotency-Key header, so that a retry does not fund twice.", field="Idempotency-Key"
        )
    await service.do_fund_pool(session, actor, pool.id, body.amount_fen, idempotency_key=chosen)
    await session.refresh(pool)
    return PoolOut.of((await service.pool_usage(session, [pool]))[0])


# --------------------------------------------------------------------------------------------- rules


@router.get("/rules", response_model=list[RuleOut])
async def list_rules(
    session: DbSession, _: Reader, event_kind: Annotated[str | None, Query(max_length=20)] = None
) -> list[RuleOut]:
    return [RuleOut.of(r) for r in await service.list_rules(session, event_kind=event_kind)]


def _preview_out(preview: service.Preview) -> PreviewOut:
    return PreviewOut(
        expected_fen=preview.amounts.expected_fen,
        expected_yuan=rules.yuan(preview.amounts.expected_fen),
        min_fen=preview.amounts.low,
        max_fen=preview.amounts.high,
        pool_balance_fen=preview.pool_balance_fen,
        funds_rewards=preview.funds_rewards,
    )


@router.post("/rules/preview", response_model=PreviewOut)
async def preview_rule(body: PreviewIn, session: DbSession, _: Manager) -> PreviewOut:
    """The expected value (mean) of a rule's amounts, its smallest and largest amount, and how many
    rewards the pool's balance pays at that mean — before the rule is saved."""
    draft = service.RuleDraft(
        name="preview",
        event_kind="consumer_open",
        role="consumer",
        pool_id=body.pool_id or uuid.UUID(int=0),
        valid_from=datetime.min.replace(tzinfo=UTC),
        mode=body.mode,
        amount_fen=body.amount_fen,
        distribution=body.distribution,
    )
    return _preview_out(await service.preview_rule(session, draft))


@router.post("/rules", response_model=RuleOut, status_code=201)
async def create_rule(body: RuleIn, session: DbSession, actor: Manager) -> RuleOut:
    return RuleOut.of(await service.do_create_rule(session, actor, body.draft()))


@router.get("/rules/{rule_id}", response_model=RuleOut)
async def get_rule(rule_id: uuid.UUID, session: DbSession, _: Reader) -> RuleOut:
    return RuleOut.of(await service.get_rule(session, rule_id))


@router.patch("/rules/{rule_id}", response_model=RuleOut)
async def update_rule(rule_id: uuid.UUID, body: RulePatch, session: DbSession, actor: Manager) -> RuleOut:
    return RuleOut.of(await service.do_update_rule(session, actor, rule_id, _not_none(body)))


# ------------------------------------------------------------------------------------ grants & review


@router.get("/grants", response_model=Paged[GrantOut])
async def list_grants(
    session: DbSession,
    _: Reader,
    page: PageDep,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(GRANT_STATUSES) + ")$")] = None,
    party: Annotated[str | None, Query(max_length=80)] = None,
    code_id: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> Paged[GrantOut]:
    rows, total = await grants.grants_of(
        session, party, status=status, code_id=code_id, limit=page.per_page, offset=page.offset
    )
    return Paged(items=[GrantOut.of(g) for g in rows], total=total, page=page.page, per_page=page.per_page)


@router.get("/review", response_model=Paged[GrantOut])
async def review_queue(session: DbSession, _: Reader, page: PageDep) -> Paged[GrantOut]:
    """Rewards held by a risk signal, oldest first."""
    rows, total = await grants.review_queue(session, limit=page.per_page, offset=page.offset)
    return Paged(items=[GrantOut.of(g) for g in rows], total=total, page=page.page, per_page=page.per_page)


@router.post("/grants/{grant_id}/release", response_model=GrantOut)
async def release_grant(grant_id: uuid.UUID, body: ReviewIn, session: DbSession, actor: Reviewer) -> GrantOut:
    return GrantOut.of(await grants.do_review(session, actor, grant_id, release=True, note=body.note))


@router.post("/grants/{grant_id}/reject", response_model=GrantOut)
async def reject_grant(grant_id: uuid.UUID, body: ReviewIn, session: DbSession, actor: Reviewer) -> GrantOut:
    return GrantOut.of(await grants.do_review(session, actor, grant_id, release=False, note=body.note))


# ------------------------------------------------------------------------------------------ settings


def _settings_out(risk: rules.RiskSettings) -> SettingsOut:
    return SettingsOut(**{name: getattr(risk, name) for name in rules.RISK_LIMITS})


@router.get("/settings", response_model=SettingsOut)
async def get_settings(session: DbSession, actor: Reader) -> SettingsOut:
    return _settings_out(await service.get_risk(session, actor.tenant_id))


@router.patch("/settings", response_model=SettingsOut)
async def update_settings(body: SettingsIn, session: DbSession, actor: Funder) -> SettingsOut:
    return _settings_out(await service.do_update_risk(session, actor, _not_none(body)))


# ------------------------------------------------------------------------------------------- payouts


@router.get("/withdrawals", response_model=Paged[WithdrawalOut])
async def list_withdrawals(
    session: DbSession,
    _: Reader,
    page: PageDep,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(WITHDRAWAL_STATUSES) + ")$")] = None,
) -> Paged[WithdrawalOut]:
    rows, total = await payouts.list_withdrawals(session, status=status, limit=page.per_page, offset=page.offset)
    return Paged(items=[WithdrawalOut.of(w) for w in rows], total=total, page=page.page, per_page=page.per_page)


@router.get("/batches", response_model=list[BatchOut])
async def list_batches(session: DbSession, _: Reader) -> list[BatchOut]:
    return [BatchOut.of(b) for b in await payouts.list_batches(session)]


@router.post("/batches", response_model=BatchOut, status_code=201)
async def approve_batch(body: BatchIn, session: DbSession, runtime: RuntimeDep, actor: Payer) -> BatchOut:
    """Approve requested withdrawals (the listed ones, or all) as one batch for the provider."""
    batch = await payouts.do_approve_batch(
        session, actor, runtime.crypto, provider=body.provider, withdrawal_ids=body.withdrawal_ids
    )
    return BatchOut.of(batch)


@router.get("/batches/{payout_batch_id}", response_model=BatchOut)
async def get_batch(payout_batch_id: uuid.UUID, session: DbSession, _: Reader) -> BatchOut:
    return BatchOut.of(await payouts.get_batch(session, payout_batch_id))


@router.get("/batches/{payout_batch_id}/withdrawals", response_model=list[WithdrawalOut])
async def batch_withdrawals(payout_batch_id: uuid.UUID, session: DbSession, _: Reader) -> list[WithdrawalOut]:
    await payouts.get_batch(session, payout_batch_id)
    return [WithdrawalOut.of(w) for w in await payouts.batch_withdrawals(session, payout_batch_id)]


@router.get("/batches/{payout_batch_id}/export.csv", response_class=Response, responses=CSV_DOWNLOAD)
@writes_on_get
async def export_batch(payout_batch_id: uuid.UUID, session: DbSession, runtime: RuntimeDep, actor: Payer) -> Response:
    """The batch for the bank or payment platform: full payee accounts, so the export is audited."""
    text = await payouts.export_csv(session, actor, runtime.crypto, payout_batch_id)
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="payout-{str(payout_batch_id)[:8]}.csv"'},
    )


@router.post("/batches/{payout_batch_id}/reconcile", response_model=ReconciledOut)
async def reconcile_from_provider(
    payout_batch_id: uuid.UUID, session: DbSession, runtime: RuntimeDep, actor: Payer
) -> ReconciledOut:
    """Settle the batch from its provider's results (sandbox)."""
    done = await payouts.do_reconcile_from_provider(session, actor, runtime.crypto, payout_batch_id)
    return ReconciledOut(**done.__dict__)


@router.post("/batches/{payout_batch_id}/results", response_model=ReconciledOut)
async def import_results(
    payout_batch_id: uuid.UUID, session: DbSession, actor: Payer, file: Annotated[UploadFile | None, File()] = None
) -> ReconciledOut:
    """Import the provider's result file (CSV: withdrawal_id, status paid/failed or 成功/失败,
    provider_ref, reason). A file with any unreadable or contradicting line applies nothing."""
    await payouts.get_batch(session, payout_batch_id)
    if file is None:
        raise ValidationFailed("Upload the provider's result file as 'file' (multipart/form-data).", field="file")
    data = await file.read(MAX_RESULT_FILE + 1)
    if len(data) > MAX_RESULT_FILE:
        raise ValidationFailed("The result file is larger than 5 MB; split it.", field="file")
    done = await payouts.do_reconcile(session, actor, payout_batch_id, payouts.parse_results(data))
    return ReconciledOut(**done.__dict__)


# ------------------------------------------------------------------------------- partner & consumer


async def partner_party(session: Any, principal: Principal) -> str:
    """The wallet a partner account owns: its dealer's, its store's, or the guide's own."""
    if principal.kind is not PrincipalKind.PARTNER:
        raise PermissionDenied("This needs a partner sign-in.")
    scope = await channel_partners.partner_scope(session, principal)
    account = scope.account
    if account.role == PARTNER_DEALER:
        return f"dealer:{scope.dealer_id}"
    if account.role == PARTNER_GUIDE and account.guide_id is not None:
        return f"guide:{account.guide_id}"
    return f"store:{scope.store_id}"


async def _wallet(session: Any, party: str) -> WalletOut:
    summary = await payouts.wallet_summary(session, party)
    recent, _ = await grants.grants_of(session, party, limit=30)
    pending, _ = await grants.grants_of(session, party, status="held", limit=30)
    withdrawals, _ = await payouts.list_withdrawals(session, party=party, limit=20)
    tenant_id = service.tenant_of(session)
    return WalletOut(
        party=_shown_party(party),
        min_withdrawal_fen=(await service.get_risk(session, tenant_id)).min_withdrawal_fen,
        recent=[GrantOut.of(g) for g in recent],
        pending=[GrantOut.of(g) for g in pending],
        withdrawals=[WithdrawalOut.of(w) for w in withdrawals],
        **summary,
    )


async def _withdraw(session: Any, runtime: Any, party: str, body: WithdrawIn, key: str) -> WithdrawalOut:
    row, _ = await payouts.do_request_withdrawal(
        session,
        runtime.crypto,
        party=party,
        amount_fen=body.amount_fen,
        payee_name=body.payee_name,
        payee_account=body.payee_account,
        request_key=key,
    )
    return WithdrawalOut.of(row)


@router.get("/partner/wallet", response_model=WalletOut, tags=["partner"])
async def partner_wallet(principal: CurrentPrincipal, session: DbSession) -> WalletOut:
    """The signed-in partner's wallet: balance, held for review, withdrawing; rewards and withdrawals."""
    return await _wallet(session, await partner_party(session, principal))


@router.post(
    "/partner/withdrawals",
    response_model=WithdrawalOut,
    status_code=201,
    tags=["partner"],
    dependencies=[Depends(rate_limit("rewards-withdraw", limit=10, period=3600, by="principal"))],
)
async def partner_withdraw(
    body: WithdrawIn, key: IdempotencyKey, principal: CurrentPrincipal, session: DbSession, runtime: RuntimeDep
) -> WithdrawalOut:
    return await _withdraw(session, runtime, await partner_party(session, principal), body, key)


@router.get("/consumer/wallet", response_model=ConsumerWalletOut, tags=["consumer"])
async def consumer_wallet(principal: CurrentConsumer, session: DbSession) -> ConsumerWalletOut:
    """The signed-in consumer's wallet: the partner's figures, and each red packet with its bottle."""
    party = f"consumer:{principal.id}"
    wallet = await _wallet(session, party)
    rows = await grants.consumer_packets(session, principal.id, limit=PACKETS_SHOWN)
    bottles = await grants.packet_bottles(session, [g.code_id for g in rows])
    packets = [
        PacketOut(
            id=g.id,
            amount_fen=g.amount_fen,
            status=g.status,
            serial=bottle.serial if (bottle := bottles.get(g.code_id)) else "",
            product=bottle.product if bottle else "",
            created_at=g.created_at,
        )
        for g in rows
    ]
    return ConsumerWalletOut(**wallet.model_dump(), packets=packets)


def device_hash(request: Request, runtime: Any) -> str:
    """The scan page's device hash for this browser (the same keyed hash the authenticity module puts
    on its scans and ItemEvents)."""
    return client_hash_of(request, runtime.crypto)


@router.post(
    "/consumer/claim",
    response_model=ClaimOut,
    tags=["consumer"],
    dependencies=[Depends(rate_limit("rewards-claim", limit=20, period=3600, by="principal"))],
)
async def consumer_claim(
    request: Request, principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep
) -> ClaimOut:
    """Move the red packets this browser received before signing in into the consumer's wallet."""
    done = await grants.do_claim_device_packets(session, principal.id, device_hash(request, runtime))
    return ClaimOut(claimed=done.grants, amount_fen=done.amount_fen)


@router.post(
    "/consumer/withdrawals",
    response_model=WithdrawalOut,
    status_code=201,
    tags=["consumer"],
    dependencies=[Depends(rate_limit("rewards-withdraw", limit=10, period=3600, by="principal"))],
)
async def consumer_withdraw(
    body: WithdrawIn, key: IdempotencyKey, principal: CurrentConsumer, session: DbSession, runtime: RuntimeDep
) -> WithdrawalOut:
    return await _withdraw(session, runtime, f"consumer:{principal.id}", body, key)
