"""H5 pages of sales: the member's orders (pay, pickup QR), the sandbox provider's pay page, and the
store clerk's pickup page of the channel app. Data pages are shells; their data comes from the API
with the member's or the clerk's token, as on the other H5 pages."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from zhongtai.core import consumers, tenancy
from zhongtai.core.web import DbSession, RuntimeDep
from zhongtai.kit.rendering import render
from zhongtai.sales import payments, service
from zhongtai.sales.errors import PaymentNotFound

router = APIRouter(prefix="/h5", include_in_schema=False)


@router.get("/{tenant_slug}/orders")
async def my_orders_page(request: Request, tenant_slug: str, session: DbSession) -> Response:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    return render(request, "sales/h5_orders.html", {"tenant": tenant})


@router.get("/{tenant_slug}/partner/pickup")
async def pickup_page(request: Request, tenant_slug: str, session: DbSession) -> Response:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    return render(request, "sales/h5_pickup.html", {"tenant": tenant})


async def _sandbox_payment(
    session: DbSession, runtime: RuntimeDep, tenant_slug: str, payment_id: uuid.UUID, token: str
) -> tuple[object, payments.SandboxPaymentProvider, object, object]:
    tenancy.scope_all_tenants(session)
    tenant = await consumers.get_active_tenant(session, tenant_slug)
    tenancy.scope_to_tenant(session, tenant.id)
    provider = payments.SandboxPaymentProvider(runtime.crypto, tenant.id)
    if not provider.check_page_token(payment_id, token):
        raise PaymentNotFound("This payment link is not valid.")
    payment = await payments.get_payment(session, payment_id)
    order = await service.get_order(session, payment.order_id)
    return tenant, provider, payment, order


@router.get("/{tenant_slug}/sandbox-pay/{payment_id}")
async def sandbox_pay_page(
    request: Request,
    tenant_slug: str,
    payment_id: uuid.UUID,
    session: DbSession,
    runtime: RuntimeDep,
    t: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The sandbox payment provider's page (stands in for WeChat Pay / Alipay; no money moves)."""
    tenant, _, payment, order = await _sandbox_payment(session, runtime, tenant_slug, payment_id, t)
    return render(
        request, "sales/h5_sandbox_pay.html", {"tenant": tenant, "payment": payment, "order": order, "token": t}
    )


@router.post("/{tenant_slug}/sandbox-pay/{payment_id}")
async def sandbox_pay(
    tenant_slug: str,
    payment_id: uuid.UUID,
    session: DbSession,
    runtime: RuntimeDep,
    t: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """The payer confirmed: the sandbox provider sends its signed notification (applied in-process, as
    the provider's server call would be) and returns the payer to the order page."""
    _, provider, payment, _ = await _sandbox_payment(session, runtime, tenant_slug, payment_id, t)
    body, signature = provider.notification_for(payment)  # type: ignore[arg-type]
    await payments.do_handle_notification(session, provider, body, signature)
    return RedirectResponse(f"/h5/{tenant_slug}/orders", status_code=303)
