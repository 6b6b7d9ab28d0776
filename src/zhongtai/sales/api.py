"""Sales REST API: staff read orders, refund, set settlement rules and read statements; consumers read
their orders, pay and show the pickup code; the payment provider notifies; store clerks hand over."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated

import segno
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from zhongtai.catalog import service as catalog
from zhongtai.channel import partners
from zhongtai.core import audit, tenancy
from zhongtai.core.clock import utcnow
from zhongtai.core.consumers import get_active_tenant
from zhongtai.core.errors import NotFound, PermissionDenied
from zhongtai.core.models import Tenant
from zhongtai.core.principals import Principal, PrincipalKind
from zhongtai.core.web import (
    CurrentConsumer,
    CurrentPrincipal,
    DbSession,
    Origin,
    PageDep,
    RuntimeDep,
    rate_limit,
    require,
    writes_on_get,
)
from zhongtai.sales import jobs as _jobs  # noqa: F401 - registers the expiry job
from zhongtai.sales import payments, pickup, rules, service, settlement
from zhongtai.sales.errors import BadOrderDraft, BadSettlementRule, OrderNotFound
from zhongtai.sales.models import SalesOrder
from zhongtai.sales.permissions import SALES_READ, SALES_WRITE
from zhongtai.sales.schemas import (
    ItemOut,
    NotificationOut,
    OrderDetailOut,
    OrderEventOut,
    OrderFullOut,
    OrderOut,
    OrderPage,
    PaymentOut,
    PaymentStarted,
    PickupCheckIn,
    PickupCodeOut,
    PickupIn,
    PickupOrderOut,
    RefundIn,
    SettlementOut,
    SettlementRuleIn,
    SettlementRuleOut,
    StatementLineOut,
)

router = APIRouter(prefix="/api/v1", tags=["sales"])

SalesReader = Annotated[Principal, Depends(require(SALES_READ))]
SalesWriter = Annotated[Principal, Depends(require(SALES_WRITE))]
NotifyLimit = Depends(rate_limit("sales-notify", limit=600, period=60.0))
PickupLimit = Depends(rate_limit("sales-pickup", limit=60, period=60.0, by="principal"))
MAX_STATEMENT_DAYS = 92


async def _detail(session: DbSession, order_id: uuid.UUID) -> OrderDetailOut:
    order = await service.get_order(session, order_id)
    events = await service.history(session, order.id)
    return OrderDetailOut(
        **OrderOut.model_validate(order).model_dump(), history=[OrderEventOut.model_validate(e) for e in events]
    )


async def full_order(session: DbSession, order_id: uuid.UUID) -> OrderFullOut:
    detail = await _detail(session, order_id)
    found = await settlement.settlement_of(session, order_id)
    return OrderFullOut(
        **detail.model_dump(),
        payments=[PaymentOut.model_validate(p) for p in await payments.payments_of(session, order_id)],
        settlement=SettlementOut.model_validate(found) if found else None,
        items=[ItemOut.model_validate(i) for i in await pickup.items_of(session, order_id)],
    )


# Staff.


@router.get("/sales/orders", response_model=OrderPage)
async def list_orders(
    session: DbSession,
    _: SalesReader,
    page: PageDep,
    state: Annotated[str | None, Query(description="pending_payment, paid, ready_for_pickup, …")] = None,
    source: Annotated[str | None, Query(max_length=20)] = None,
    store_id: uuid.UUID | None = None,
    consumer_id: uuid.UUID | None = None,
    order_no: Annotated[str | None, Query(max_length=24)] = None,
    created_from: Annotated[str | None, Query(max_length=40)] = None,
    created_to: Annotated[str | None, Query(max_length=40)] = None,
) -> OrderPage:
    bounds = {}
    for name, text in (("created_from", created_from), ("created_to", created_to)):
        if text:
            try:
                bounds[name] = TypeAdapter(AwareDatetime).validate_python(text)
            except ValidationError as exc:
                raise BadOrderDraft(f"{name} must be a date-time with a time zone.", field=name) from exc
    orders, total = await service.list_orders(
        session,
        state=state,
        source=source,
        store_id=store_id,
        consumer_id=consumer_id,
        order_no=order_no,
        limit=page.per_page,
        offset=page.offset,
        created_from=bounds.get("created_from"),
        created_to=bounds.get("created_to"),
    )
    return OrderPage(
        items=[OrderOut.model_validate(o) for o in orders], total=total, page=page.page, per_page=page.per_page
    )


@router.get("/sales/orders/{order_id}", response_model=OrderFullOut)
async def get_order(order_id: uuid.UUID, session: DbSession, _: SalesReader) -> OrderFullOut:
    return await full_order(session, order_id)


@router.post("/sales/orders/{order_id}/refund", response_model=OrderFullOut)
async def refund_order(
    order_id: uuid.UUID, body: RefundIn, session: DbSession, actor: SalesWriter, runtime: RuntimeDep, origin: Origin
) -> OrderFullOut:
    order = await service.get_order(session, order_id)
    provider = payments.provider_for(payments.SANDBOX, runtime.crypto, order.tenant_id)
    await payments.do_refund(session, provider, order, actor=f"{actor.kind}:{actor.id}", reason=body.reason)
    await audit.record(
        session, actor, "sales.order.refund", target_type="sales_order", target_id=order.id, origin=origin
    )
    return await full_order(session, order_id)


@router.get("/sales/settlement/rules", response_model=list[SettlementRuleOut])
async def list_rules(session: DbSession, _: SalesReader) -> list[SettlementRuleOut]:
    return [SettlementRuleOut.model_validate(r) for r in await settlement.list_rules(session)]


@router.put("/sales/settlement/rules/{scope}", response_model=SettlementRuleOut)
async def set_rule(
    scope: str, body: SettlementRuleIn, session: DbSession, actor: SalesWriter, origin: Origin
) -> SettlementRuleOut:
    if scope != rules.DEFAULT_SCOPE:
        try:
            await catalog.get_product(session, uuid.UUID(scope))
        except ValueError as exc:
            raise BadSettlementRule("The scope is 'default' or a product id.", field="scope") from exc
    row = await settlement.do_set_rule(
        session, scope, rules.SettlementRule(body.mode, body.brand_share, body.dealer_share, body.store_share)
    )
    await audit.record(
        session,
        actor,
        "sales.settlement_rule.set",
        target_type="sales_settlement_rule",
        target_id=row.id,
        origin=origin,
    )
    return SettlementRuleOut.model_validate(row)


def _days(day_from: date | None, day_to: date | None) -> tuple[date, date]:
    today = settlement.business_day(utcnow())
    end = day_to or today
    start = day_from or end
    if start > end or (end - start) > timedelta(days=MAX_STATEMENT_DAYS):
        raise BadSettlementRule(f"Choose day_from ≤ day_to, at most {MAX_STATEMENT_DAYS} days apart.", field="day_from")
    return start, end


@router.get(
    "/sales/statements",
    response_model=list[StatementLineOut],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},  # format=csv
)
async def statements(
    session: DbSession,
    _: SalesReader,
    by: Annotated[str, Query(pattern="^(store|dealer)$")] = "store",
    day_from: date | None = None,
    day_to: date | None = None,
    party_id: uuid.UUID | None = None,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> list[StatementLineOut] | Response:
    start, end = _days(day_from, day_to)
    lines = await settlement.statement(session, by=by, day_from=start, day_to=end, party_id=party_id)
    if format == "csv":
        return Response(
            settlement.statement_csv(lines, by=by, names={}),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="statement-{by}-{start}-{end}.csv"'},
        )
    return [StatementLineOut.model_validate(line) for line in lines]


# Consumers.


async def _my_order(session: DbSession, consumer: Principal, order_id: uuid.UUID) -> SalesOrder:
    order = await service.get_order(session, order_id)
    if order.consumer_id != consumer.id:
        raise OrderNotFound(f"Order {order_id} was not found.", order_id=str(order_id))
    return order


@router.get("/consumer/sales/orders", response_model=OrderPage)
async def my_orders(session: DbSession, consumer: CurrentConsumer, page: PageDep) -> OrderPage:
    orders, total = await service.list_orders(session, consumer_id=consumer.id, limit=page.per_page, offset=page.offset)
    return OrderPage(
        items=[OrderOut.model_validate(o) for o in orders], total=total, page=page.page, per_page=page.per_page
    )


@router.get("/consumer/sales/orders/{order_id}", response_model=OrderDetailOut)
async def my_order(order_id: uuid.UUID, session: DbSession, consumer: CurrentConsumer) -> OrderDetailOut:
    await _my_order(session, consumer, order_id)
    return await _detail(session, order_id)


@router.post("/consumer/sales/orders/{order_id}/payments", response_model=PaymentStarted, status_code=201)
async def pay_order(
    order_id: uuid.UUID, session: DbSession, consumer: CurrentConsumer, runtime: RuntimeDep
) -> PaymentStarted:
    order = await _my_order(session, consumer, order_id)
    tenant = await session.get(Tenant, order.tenant_id)
    assert tenant is not None
    provider = payments.provider_for(payments.SANDBOX, runtime.crypto, order.tenant_id)
    payment, request = await payments.do_start_payment(session, provider, order, tenant_slug=tenant.slug)
    return PaymentStarted(payment_id=payment.id, pay_url=request.pay_url, params=request.params)


@router.get("/consumer/sales/orders/{order_id}/pickup-code", response_model=PickupCodeOut)
@writes_on_get
async def my_pickup_code(
    order_id: uuid.UUID, session: DbSession, consumer: CurrentConsumer, runtime: RuntimeDep
) -> PickupCodeOut:
    order = await _my_order(session, consumer, order_id)
    code = pickup.issue_code(runtime.crypto, order)
    svg = segno.make(code.token, error="m").svg_inline(scale=4, border=2)
    return PickupCodeOut(token=code.token, expires_at=code.expires_at, qr_svg=svg)


# The payment provider.


@router.post(
    "/public/{tenant_slug}/sales/payments/sandbox/notify",
    response_model=NotificationOut,
    dependencies=[NotifyLimit],
    tags=["sales", "public"],
)
async def sandbox_notify(
    tenant_slug: str, request: Request, session: DbSession, runtime: RuntimeDep
) -> NotificationOut:
    """The sandbox provider's signed notification (header `X-ZT-Sandbox-Signature: v1=<hex HMAC>`).
    Sending the same notification again answers the same."""
    tenancy.scope_all_tenants(session)
    tenant = await get_active_tenant(session, tenant_slug)
    tenancy.scope_to_tenant(session, tenant.id)
    provider = payments.provider_for(payments.SANDBOX, runtime.crypto, tenant.id)
    body = await request.body()
    result = await payments.do_handle_notification(
        session, provider, body, request.headers.get(payments.SIGNATURE_HEADER)
    )
    return NotificationOut(
        result=result.result,
        payment_id=result.payment_id,
        order_id=result.order_id,
        order_no=result.order_no,
        order_state=result.order_state,
    )


# Store clerks (partner accounts of a store).


async def _clerk_store(session: DbSession, principal: Principal) -> tuple[uuid.UUID, uuid.UUID]:
    if principal.kind is not PrincipalKind.PARTNER:
        raise PermissionDenied("This needs a store clerk's partner sign-in.")
    scope = await partners.partner_scope(session, principal)
    if scope.store_id is None:
        raise PermissionDenied("Only a store's staff hand over pickups; dealer accounts cannot.")
    return scope.store_id, principal.id


async def _pickup_out(session: DbSession, order: SalesOrder) -> PickupOrderOut:
    try:
        name = (await catalog.get_product(session, order.product_id)).name
    except NotFound:
        name = ""
    return PickupOrderOut(
        order_id=order.id,
        order_no=order.order_no,
        product_id=order.product_id,
        product_name=name,
        quantity=order.quantity,
        state=order.state,
        picked_up_at=order.picked_up_at,
    )


@router.post("/partner/sales/pickup/check", response_model=PickupOrderOut, dependencies=[PickupLimit], tags=["partner"])
async def check_pickup(
    body: PickupCheckIn, session: DbSession, principal: CurrentPrincipal, runtime: RuntimeDep
) -> PickupOrderOut:
    store_id, _ = await _clerk_store(session, principal)
    order = await pickup.check_pickup(session, runtime.crypto, principal.tenant_id, body.token, store_id=store_id)
    return await _pickup_out(session, order)


@router.post("/partner/sales/pickup", response_model=PickupOrderOut, dependencies=[PickupLimit], tags=["partner"])
async def hand_over(
    body: PickupIn, session: DbSession, principal: CurrentPrincipal, runtime: RuntimeDep
) -> PickupOrderOut:
    store_id, account_id = await _clerk_store(session, principal)
    order = await pickup.do_hand_over(
        session,
        runtime.crypto,
        principal.tenant_id,
        body.token,
        body.item_codes,
        store_id=store_id,
        partner_account_id=account_id,
    )
    return await _pickup_out(session, order)
