"""Console pages of rewards: rules (with the expected-value preview before saving), fee pools with
usage bars and funding, the review queue with the risk settings, withdrawals and payout batches
(sandbox, CSV export, result-file import)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from zhongtai.catalog import queries as catalog_queries
from zhongtai.codes.events import ITEM_STEPS as REWARD_KINDS
from zhongtai.core.errors import AppError
from zhongtai.core.principals import Principal
from zhongtai.core.web import DbSession, RuntimeDep, writes_on_get
from zhongtai.kit.page_deps import require_page
from zhongtai.kit.rendering import (
    error_field,
    localize_error,
    redirect_with_flash,
    render,
    templates,
    tr,
)
from zhongtai.rewards import grants, payouts, rules, service
from zhongtai.rewards.models import REQUESTED, ROLES
from zhongtai.rewards.permissions import REWARDS_FUND, REWARDS_MANAGE, REWARDS_PAYOUT, REWARDS_READ, REWARDS_REVIEW

router = APIRouter(prefix="/console/rewards", include_in_schema=False)

Reader = Annotated[Principal, require_page(REWARDS_READ)]
Manager = Annotated[Principal, require_page(REWARDS_MANAGE)]
Funder = Annotated[Principal, require_page(REWARDS_FUND)]
Reviewer = Annotated[Principal, require_page(REWARDS_REVIEW)]
Payer = Annotated[Principal, require_page(REWARDS_PAYOUT)]
Text = Annotated[str, Form(max_length=200)]
LongText = Annotated[str, Form(max_length=2000)]
CHINA = timezone(timedelta(hours=8))  # the console's times are China Standard Time

EVENT_LABELS = {
    "dealer_receive": "Dealer receives",
    "store_receive": "Store receives",
    "case_open": "Case opened",
    "sale": "Sale",
    "consumer_open": "Consumer opens",
}
ROLE_LABELS = {"consumer": "Consumer", "store": "Store", "guide": "Shopping guide", "dealer": "Dealer"}
STATUS_LABELS = {
    "paid": "Paid",
    "held": "Held for review",
    "released": "Released",
    "rejected": "Rejected",
    "refused": "Not paid",
    "requested": "Requested",
    "in_batch": "In a batch",
    "failed": "Failed",
    "sent": "Sent",
    "reconciled": "Reconciled",
}
HOLD_LABELS = {
    "velocity": "Too many scans in an hour",
    "store_distance": "Scanned far from the store",
    "consumer_opens": "Too many bottles opened",
    "shared_device": "One device, many accounts",
    "diversion": "Waits for the diversion alert this scan raised",
}
REASON_LABELS = {"pool_empty": "Pool empty", "daily_cap": "Daily cap reached", "partner_cap": "Partner cap reached"}
SETTING_LABELS = {
    "velocity_per_hour": "Rewards per partner per hour before holding",
    "store_distance_km": "Distance from the store's address that holds (km)",
    "consumer_opens_per_day": "Bottles one consumer may open per day before holding",
    "device_accounts": "Accounts on one device before holding",
    "min_withdrawal_fen": "Smallest withdrawal (fen)",
}
assert set(EVENT_LABELS) == set(REWARD_KINDS)
assert set(ROLE_LABELS) == set(ROLES)
assert set(SETTING_LABELS) == set(rules.RISK_LIMITS)

templates.env.filters["yuan"] = rules.yuan


def parse_yuan(value: str) -> int | None:
    """ "1.88" → 188 fen; None when it is not an amount with at most two decimals."""
    try:
        amount = Decimal(value.strip().replace(",", "").lstrip("¥"))
    except (InvalidOperation, ValueError):
        return None
    fen = amount * 100
    if not amount.is_finite() or fen != fen.to_integral_value():
        return None
    return int(fen)


def _parse_local(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.strip()).replace(tzinfo=CHINA)
    except ValueError:
        return None


def _distribution(
    mode: str, amount: str, tiers: str, low: str, high: str
) -> tuple[int | None, dict[str, Any] | None, str]:
    """The form's amounts as the service takes them; the field of the first problem, or ""."""
    if mode == "fixed":
        fen = parse_yuan(amount)
        return (fen, None, "" if fen is not None else "amount")
    if mode == "uniform":
        lo, hi = parse_yuan(low), parse_yuan(high)
        if lo is None or hi is None:
            return None, None, "low"
        return None, {"type": "uniform", "min_fen": lo, "max_fen": hi}, ""
    parsed = []
    for line in tiers.strip().splitlines():
        if not line.strip():
            continue
        head, _, weight = line.replace("，", ",").partition(",")
        fen = parse_yuan(head)
        if fen is None or not weight.strip().isdigit():
            return None, None, "tiers"
        parsed.append({"amount_fen": fen, "weight": int(weight.strip())})
    return None, {"type": "tiers", "tiers": parsed}, ""


# --------------------------------------------------------------------------------------------- rules


def _rule_defaults() -> dict[str, str]:
    today = datetime.now(CHINA).date()
    return {
        "name": "",
        "event_kind": "consumer_open",
        "role": "consumer",
        "pool_id": "",
        "product_id": "",
        "mode": "tiers",
        "amount": "1.00",
        "tiers": "0.88,70\n1.88,25\n8.88,5",
        "low": "0.30",
        "high": "2.00",
        "valid_from": f"{today}T00:00",
        "valid_to": f"{today + timedelta(days=30)}T00:00",
    }


async def _rules_page(
    request: Request,
    session: DbSession,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    preview: service.Preview | None = None,
    status_code: int = 200,
) -> Response:
    pools = await service.list_pools(session)
    products = await catalog_queries.product_choices(session, limit=500)
    return render(
        request,
        "rewards/rules.html",
        {
            "rules": await service.list_rules(session),
            "pools": pools,
            "pool_names": {p.id: p.name for p in pools},
            "products": products,
            "product_names": {p.id: p.name for p in products},
            "form": form or _rule_defaults(),
            "errors": errors or {},
            "preview": preview,
            "event_labels": EVENT_LABELS,
            "role_labels": ROLE_LABELS,
        },
        status_code=status_code,
    )


@router.get("/rules")
async def rules_page(request: Request, session: DbSession, _: Reader) -> Response:
    return await _rules_page(request, session)


def _rule_draft(form: dict[str, str], errors: dict[str, str], request: Request) -> service.RuleDraft | None:
    mode = form["mode"] if form["mode"] in ("fixed", "tiers", "uniform") else "fixed"
    amount_fen, distribution, bad = _distribution(mode, form["amount"], form["tiers"], form["low"], form["high"])
    if bad:
        errors[bad] = tr(request, "Amounts are in yuan with at most two decimals; a tier is one line: amount,weight.")
    try:
        pool_id = uuid.UUID(form["pool_id"])
    except ValueError:
        errors["pool_id"] = tr(request, "Choose a fee pool.")
        pool_id = None
    product_id = None
    if form["product_id"]:
        try:
            product_id = uuid.UUID(form["product_id"])
        except ValueError:
            errors["product_id"] = tr(request, "Choose a product.")
    valid_from, valid_to = (
        _parse_local(form["valid_from"]),
        _parse_local(form["valid_to"]) if form["valid_to"] else None,
    )
    if valid_from is None:
        errors["valid_from"] = tr(request, "Enter a date and time.")
    if errors or pool_id is None or valid_from is None:
        return None
    return service.RuleDraft(
        name=form["name"],
        event_kind=form["event_kind"],
        role=form["role"],
        pool_id=pool_id,
        valid_from=valid_from,
        valid_to=valid_to,
        product_id=product_id,
        mode="fixed" if mode == "fixed" else "random",
        amount_fen=amount_fen,
        distribution=distribution,
    )


@router.post("/rules")
async def create_rule(
    request: Request,
    session: DbSession,
    principal: Manager,
    name: Text = "",
    event_kind: Text = "",
    role: Text = "",
    pool_id: Text = "",
    product_id: Text = "",
    mode: Text = "fixed",
    amount: Text = "",
    tiers: LongText = "",
    low: Text = "",
    high: Text = "",
    valid_from: Text = "",
    valid_to: Text = "",
    action: Text = "preview",
) -> Response:
    """ "Preview" shows the expected value, the range and what the pool pays for; "Save" saves the rule
    (the form's save button appears once a preview is shown)."""
    form = {
        "name": name, "event_kind": event_kind, "role": role, "pool_id": pool_id, "product_id": product_id,
        "mode": mode, "amount": amount, "tiers": tiers, "low": low, "high": high, "valid_from": valid_from,
        "valid_to": valid_to,
    }  # fmt: skip
    errors: dict[str, str] = {}
    draft = _rule_draft(form, errors, request)
    preview = None
    if draft is not None:
        try:
            preview = await service.preview_rule(session, draft)
            if action == "save":
                rule = await service.do_create_rule(session, principal, draft)
                return redirect_with_flash(
                    request,
                    "/console/rewards/rules",
                    tr(
                        request,
                        "Rule {name} was saved; expected {amount} yuan per reward.",
                        name=rule.name,
                        amount=rules.yuan(rule.expected_fen),
                    ),
                )
        except AppError as exc:
            await session.rollback()
            errors[error_field(exc)] = localize_error(request, exc)
            preview = None
    status = 422 if errors else 200
    return await _rules_page(request, session, form=form, errors=errors, preview=preview, status_code=status)


@router.post("/rules/{rule_id}/active")
async def toggle_rule(
    request: Request, rule_id: uuid.UUID, session: DbSession, principal: Manager, active: Text = ""
) -> Response:
    rule = await service.do_update_rule(session, principal, rule_id, {"is_active": active == "1"})
    message = "Rule {name} is active." if rule.is_active else "Rule {name} is paused."
    return redirect_with_flash(request, "/console/rewards/rules", tr(request, message, name=rule.name))


# --------------------------------------------------------------------------------------------- pools


async def _pools_page(
    request: Request,
    session: DbSession,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    usage = await service.pool_usage(session, await service.list_pools(session))
    return render(
        request,
        "rewards/pools.html",
        {
            "usage": usage,
            "fund_key": uuid.uuid4().hex,  # one per page view: a double submit funds once
            "form": form or {"code": "", "name": "", "campaign": "", "daily_cap": "", "partner_cap": ""},
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/pools")
async def pools_page(request: Request, session: DbSession, _: Reader) -> Response:
    return await _pools_page(request, session)


@router.post("/pools")
async def create_pool(
    request: Request,
    session: DbSession,
    principal: Manager,
    code: Text = "",
    name: Text = "",
    campaign: Text = "",
    daily_cap: Text = "",
    partner_cap: Text = "",
) -> Response:
    form = {"code": code, "name": name, "campaign": campaign, "daily_cap": daily_cap, "partner_cap": partner_cap}
    errors: dict[str, str] = {}
    caps: dict[str, int | None] = {}
    for field, value in (("daily_cap", daily_cap), ("partner_cap", partner_cap)):
        caps[field] = parse_yuan(value) if value.strip() else None
        if value.strip() and not caps[field]:
            errors[field] = tr(request, "An amount in yuan, such as 500 or 12.50.")
    if not errors:
        try:
            pool = await service.do_create_pool(
                session,
                principal,
                service.PoolDraft(
                    code=code,
                    name=name,
                    campaign=campaign,
                    daily_cap_fen=caps["daily_cap"],
                    per_partner_cap_fen=caps["partner_cap"],
                ),
            )
        except AppError as exc:
            await session.rollback()
            errors[error_field(exc)] = localize_error(request, exc)
        else:
            return redirect_with_flash(
                request,
                "/console/rewards/pools",
                tr(request, "Fee pool {name} was created; fund it to start paying.", name=pool.name),
            )
    return await _pools_page(request, session, form=form, errors=errors, status_code=422)


@router.post("/pools/{pool_id}/fund")
async def fund_pool(
    request: Request,
    pool_id: uuid.UUID,
    session: DbSession,
    principal: Funder,
    amount: Text = "",
    idempotency_key: Text = "",
) -> Response:
    pool = await service.get_pool(session, pool_id)
    fen = parse_yuan(amount)
    if not fen or fen <= 0:
        return redirect_with_flash(
            request, "/console/rewards/pools", tr(request, "An amount in yuan, such as 500 or 12.50."), "error"
        )
    try:
        await service.do_fund_pool(
            session, principal, pool.id, fen, idempotency_key=idempotency_key or uuid.uuid4().hex
        )
    except AppError as exc:
        await session.rollback()
        return redirect_with_flash(request, "/console/rewards/pools", localize_error(request, exc), "error")
    return redirect_with_flash(
        request,
        "/console/rewards/pools",
        tr(request, "{amount} yuan moved into {name}.", amount=rules.yuan(fen), name=pool.name),
    )


# -------------------------------------------------------------------------------------------- review


async def _review_page(
    request: Request, session: DbSession, *, errors: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    queue, total = await grants.review_queue(session, limit=100)
    recent, _ = await grants.grants_of(session, limit=30)
    tenant_id = service.tenant_of(session)
    return render(
        request,
        "rewards/review.html",
        {
            "queue": queue,
            "total": total,
            "recent": recent,
            "risk": await service.get_risk(session, tenant_id),
            "setting_labels": SETTING_LABELS,
            "hold_labels": HOLD_LABELS,
            "reason_labels": REASON_LABELS,
            "status_labels": STATUS_LABELS,
            "event_labels": EVENT_LABELS,
            "role_labels": ROLE_LABELS,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/review")
async def review_page(request: Request, session: DbSession, _: Reader) -> Response:
    return await _review_page(request, session)


@router.post("/grants/{grant_id}/review")
async def review_grant(
    request: Request, grant_id: uuid.UUID, session: DbSession, principal: Reviewer, decision: Text = "", note: Text = ""
) -> Response:
    await grants.get_grant(session, grant_id)  # another brand's or an unknown reward: 404
    if decision not in ("release", "reject"):
        return redirect_with_flash(
            request, "/console/rewards/review", tr(request, "Choose release or reject."), "error"
        )
    try:
        row = await grants.do_review(session, principal, grant_id, release=decision == "release", note=note[:300])
    except AppError as exc:
        await session.rollback()
        return redirect_with_flash(request, "/console/rewards/review", localize_error(request, exc), "error")
    message = (
        "{amount} yuan released to the wallet." if decision == "release" else "{amount} yuan returned to the pool."
    )
    return redirect_with_flash(
        request, "/console/rewards/review", tr(request, message, amount=rules.yuan(row.amount_fen))
    )


@router.post("/settings")
async def update_settings(request: Request, session: DbSession, principal: Funder) -> Response:
    form = await request.form()
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in SETTING_LABELS:
        raw = str(form.get(name, "")).strip()[:20]
        try:
            changes[name] = float(raw) if name == "store_distance_km" else int(raw)
        except ValueError:
            errors[name] = tr(request, "Enter a number.")
    if not errors:
        try:
            await service.do_update_risk(session, principal, changes)
        except AppError as exc:
            await session.rollback()
            errors[error_field(exc)] = localize_error(request, exc)
        else:
            return redirect_with_flash(request, "/console/rewards/review", tr(request, "Risk settings were saved."))
    return await _review_page(request, session, errors=errors, status_code=422)


# ------------------------------------------------------------------------------------------- payouts


@router.get("/payouts")
async def payouts_page(request: Request, session: DbSession, _: Reader) -> Response:
    requested, total = await payouts.list_withdrawals(session, status=REQUESTED, limit=200)
    return render(
        request,
        "rewards/payouts.html",
        {
            "requested": requested,
            "total": total,
            "requested_fen": sum(w.amount_fen for w in requested),
            "batches": await payouts.list_batches(session),
            "status_labels": STATUS_LABELS,
        },
    )


@router.post("/batches")
async def approve_batch(
    request: Request, session: DbSession, runtime: RuntimeDep, principal: Payer, provider: Text = "sandbox"
) -> Response:
    try:
        batch = await payouts.do_approve_batch(session, principal, runtime.crypto, provider=provider)
    except AppError as exc:
        await session.rollback()
        return redirect_with_flash(request, "/console/rewards/payouts", localize_error(request, exc), "error")
    return redirect_with_flash(
        request,
        f"/console/rewards/payouts/{batch.id}",
        tr(
            request,
            "Batch of {count} withdrawals ({amount} yuan) approved.",
            count=batch.count,
            amount=rules.yuan(batch.total_fen),
        ),
    )


@router.get("/payouts/{payout_batch_id}")
async def batch_page(request: Request, payout_batch_id: uuid.UUID, session: DbSession, _: Reader) -> Response:
    batch = await payouts.get_batch(session, payout_batch_id)
    return render(
        request,
        "rewards/batch.html",
        {
            "batch": batch,
            "rows": await payouts.batch_withdrawals(session, batch.id),
            "status_labels": STATUS_LABELS,
            "sandbox": batch.provider in payouts.PROVIDERS,
        },
    )


@router.get("/payouts/{payout_batch_id}/export.csv")
@writes_on_get
async def export_batch(
    request: Request, payout_batch_id: uuid.UUID, session: DbSession, runtime: RuntimeDep, principal: Payer
) -> Response:
    text = await payouts.export_csv(session, principal, runtime.crypto, payout_batch_id)
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="payout-{str(payout_batch_id)[:8]}.csv"'},
    )


@router.post("/payouts/{payout_batch_id}/reconcile")
async def reconcile_batch(
    request: Request,
    payout_batch_id: uuid.UUID,
    session: DbSession,
    runtime: RuntimeDep,
    principal: Payer,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """With a file: import the provider's result file; without: read the sandbox provider's results."""
    batch = await payouts.get_batch(session, payout_batch_id)
    url = f"/console/rewards/payouts/{batch.id}"
    try:
        if file is not None and file.filename:
            data = await file.read(5 * 1024 * 1024 + 1)
            done = await payouts.do_reconcile(session, principal, batch.id, payouts.parse_results(data))
        else:
            done = await payouts.do_reconcile_from_provider(session, principal, runtime.crypto, batch.id)
    except AppError as exc:
        await session.rollback()
        return redirect_with_flash(request, url, localize_error(request, exc), "error")
    return redirect_with_flash(
        request,
        url,
        tr(request, "{paid} paid, {failed} failed (returned to their wallets).", paid=done.paid, failed=done.failed),
    )
