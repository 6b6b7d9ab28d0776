"""Payments: a provider interface, the sandbox provider, and the use cases around them.

A provider is an outside system (WeChat Pay, Alipay, a bank). The platform talks to it through
`PaymentProvider`: start a payment for an order (a URL or parameters for the payer), verify the
provider's signed notification, refund. `SandboxPaymentProvider` stands in for a real one: it signs
its notifications with HMAC-SHA256 under a per-tenant key derived from the installation secret
(`core.crypto`), and its pay page (`/h5/{brand}/sandbox-pay/{payment_id}`) lets a person or a test
complete a payment.

The notification handler is idempotent: the same notification twice gives one payment and the same
answer. A wrong signature is 401, an unknown payment 404, a wrong amount or currency 422, a payment
already completed with another transaction 409.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhongtai.core import domain_events
from zhongtai.core.clock import utcnow
from zhongtai.core.crypto import Crypto
from zhongtai.sales import rules, service, settlement
from zhongtai.sales.errors import (
    AmountMismatch,
    BadNotification,
    BadSignature,
    NotPayable,
    PaymentConflict,
    PaymentNotFound,
    RefundRefused,
)
from zhongtai.sales.events import OrderPaid
from zhongtai.sales.models import SalesOrder, SalesPayment

SANDBOX = "sandbox"
SIGNATURE_HEADER = "x-zt-sandbox-signature"


@dataclass(frozen=True)
class PaymentRequest:
    """What the payer needs: a page to open, or parameters for a provider's app SDK."""

    pay_url: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Notification:
    """A provider's verified statement that a payment succeeded."""

    payment_id: uuid.UUID
    txn_id: str
    amount_fen: int
    currency: str
    paid_at: datetime


class PaymentProvider(Protocol):
    name: str

    def create_payment(self, payment: SalesPayment, order: SalesOrder, *, tenant_slug: str) -> PaymentRequest: ...

    def verify_notification(self, body: bytes, signature: str | None) -> Notification: ...

    async def refund(self, payment: SalesPayment) -> str: ...


class SandboxPaymentProvider:
    """The sandbox payment provider (no money moves). Signs with a per-tenant HMAC key."""

    name = SANDBOX

    def __init__(self, crypto: Crypto, tenant_id: uuid.UUID) -> None:
        self._key = crypto.sign(str(tenant_id), purpose="sales.sandbox-payment-key").encode()
        self._tenant_id = tenant_id

    def page_token(self, payment_id: uuid.UUID) -> str:
        """Authorises opening the sandbox pay page of one payment (the provider's own link)."""
        return hmac.new(self._key, f"page\x00{payment_id}".encode(), hashlib.sha256).hexdigest()[:32]

    def check_page_token(self, payment_id: uuid.UUID, token: str) -> bool:
        return hmac.compare_digest(self.page_token(payment_id), token or "")

    def create_payment(self, payment: SalesPayment, order: SalesOrder, *, tenant_slug: str) -> PaymentRequest:
        token = self.page_token(payment.id)
        return PaymentRequest(
            pay_url=f"/h5/{tenant_slug}/sandbox-pay/{payment.id}?t={token}",
            params={"payment_id": str(payment.id), "amount_fen": payment.amount_fen, "currency": payment.currency},
        )

    def sign(self, body: bytes) -> str:
        return "v1=" + hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def notification_for(self, payment: SalesPayment, *, amount_fen: int | None = None) -> tuple[bytes, str]:
        """The provider's side: the signed notification it sends when the payer confirmed."""
        txn = "sbx" + hmac.new(self._key, f"txn\x00{payment.id}".encode(), hashlib.sha256).hexdigest()[:29]
        body = json.dumps(
            {
                "payment_id": str(payment.id),
                "txn_id": txn,
                "amount_fen": payment.amount_fen if amount_fen is None else amount_fen,
                "currency": payment.currency,
                "status": "SUCCESS",
                "paid_at": utcnow().isoformat(),
            },
            separators=(",", ":"),
        ).encode()
        return body, self.sign(body)

    def verify_notification(self, body: bytes, signature: str | None) -> Notification:
        if not signature or not hmac.compare_digest(self.sign(body), signature.strip()):
            raise BadSignature()
        try:
            data = json.loads(body)
            if data.get("status") != "SUCCESS":
                raise BadNotification(f"Unknown payment status {data.get('status')!r}; only SUCCESS is notified.")
            amount = data["amount_fen"]
            if isinstance(amount, bool) or not isinstance(amount, int):
                raise BadNotification("amount_fen must be an integer number of fen.")
            return Notification(
                payment_id=uuid.UUID(str(data["payment_id"])),
                txn_id=str(data["txn_id"])[:64],
                amount_fen=amount,
                currency=str(data["currency"]),
                paid_at=datetime.fromisoformat(str(data["paid_at"])),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BadNotification(f"The notification is not well-formed: {exc}.") from exc

    async def refund(self, payment: SalesPayment) -> str:
        return "sbr" + hmac.new(self._key, f"refund\x00{payment.id}".encode(), hashlib.sha256).hexdigest()[:29]


def provider_for(name: str, crypto: Crypto, tenant_id: uuid.UUID) -> SandboxPaymentProvider:
    if name != SANDBOX:
        raise NotPayable(f"Unknown payment provider {name!r}; this installation has: {SANDBOX}.")
    return SandboxPaymentProvider(crypto, tenant_id)


@dataclass(frozen=True)
class NotificationResult:
    result: str  # "paid" | "refunded"
    payment_id: uuid.UUID
    order_id: uuid.UUID
    order_no: str
    order_state: str
    duplicate: bool


async def get_payment(session: AsyncSession, payment_id: uuid.UUID) -> SalesPayment:
    payment = await session.scalar(select(SalesPayment).where(SalesPayment.id == payment_id))
    if payment is None:
        raise PaymentNotFound(f"Payment {payment_id} was not found.", payment_id=str(payment_id))
    return payment


async def payments_of(session: AsyncSession, order_id: uuid.UUID) -> list[SalesPayment]:
    rows = await session.scalars(
        select(SalesPayment).where(SalesPayment.order_id == order_id).order_by(SalesPayment.created_at)
    )
    return list(rows)


async def do_start_payment(
    session: AsyncSession, provider: SandboxPaymentProvider, order: SalesOrder, *, tenant_slug: str
) -> tuple[SalesPayment, PaymentRequest]:
    """Open a payment for an unpaid order before its deadline (the open one again, if there is one)."""
    if order.state != rules.PENDING_PAYMENT:
        raise NotPayable(
            f"Order {order.order_no} is {order.state}; only an unpaid order can be paid.", state=order.state
        )
    if order.pay_deadline <= utcnow():
        raise NotPayable(f"The payment deadline of order {order.order_no} has passed.", state=order.state)
    payment = await session.scalar(
        select(SalesPayment).where(SalesPayment.order_id == order.id, SalesPayment.status == "created")
    )
    if payment is None:
        payment = SalesPayment(
            tenant_id=order.tenant_id,
            order_id=order.id,
            provider=provider.name,
            amount_fen=order.amount_fen,
            currency=order.currency,
        )
        session.add(payment)
        await session.flush()
    return payment, provider.create_payment(payment, order, tenant_slug=tenant_slug)


async def do_handle_notification(
    session: AsyncSession, provider: SandboxPaymentProvider, body: bytes, signature: str | None
) -> NotificationResult:
    """Verify and apply a provider notification; the same one again answers the same, changing nothing."""
    note = provider.verify_notification(body, signature)
    payment = await get_payment(session, note.payment_id)
    order = await service.get_order(session, payment.order_id)
    if payment.provider_txn_id is not None:
        if payment.provider_txn_id != note.txn_id:
            raise PaymentConflict(
                f"Payment {payment.id} was completed by another transaction.", payment_id=str(payment.id)
            )
        return _result(payment, order, duplicate=True)
    if (note.amount_fen, note.currency) != (payment.amount_fen, payment.currency):
        raise AmountMismatch(
            f"The notification says {note.amount_fen} {note.currency}; order {order.order_no} costs "
            f"{payment.amount_fen} {payment.currency}.",
            expected_fen=payment.amount_fen,
            notified_fen=note.amount_fen,
        )
    now = utcnow()
    claimed = await session.execute(
        update(SalesPayment)
        .where(SalesPayment.id == payment.id, SalesPayment.provider_txn_id.is_(None))
        .values(status="succeeded", provider_txn_id=note.txn_id, succeeded_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(payment)
    if claimed.rowcount != 1:  # type: ignore[attr-defined]  # a concurrent notification won
        if payment.provider_txn_id != note.txn_id:
            raise PaymentConflict(f"Payment {payment.id} was completed by another transaction.")
        await session.refresh(order)  # the winner's changes, committed while this one waited
        return _result(payment, order, duplicate=True)
    if order.state == rules.PENDING_PAYMENT and order.pay_deadline > now:
        await service.do_transition(session, order, rules.PAID, actor=f"payment:{provider.name}", now=now)
        await domain_events.publish(
            session,
            OrderPaid(
                tenant_id=order.tenant_id,
                order_id=order.id,
                source=order.source,
                source_ref=order.source_ref,
                product_id=order.product_id,
                quantity=order.quantity,
                consumer_id=order.consumer_id,
                amount_fen=order.amount_fen,
            ),
        )
        await settlement.do_settle(session, order)
        await service.do_transition(session, order, rules.READY_FOR_PICKUP, actor="system", now=now)
        return _result(payment, order, duplicate=False)
    # Paid too late (expired, or another payment got there first): the money goes back at once.
    payment.refund_ref = await provider.refund(payment)
    payment.status, payment.refunded_at = "refunded", now
    payment.note = f"order was {order.state} when the payment arrived; refunded"
    await session.flush()
    return _result(payment, order, duplicate=False)


def _result(payment: SalesPayment, order: SalesOrder, *, duplicate: bool) -> NotificationResult:
    return NotificationResult(
        result="paid" if payment.status == "succeeded" else "refunded",
        payment_id=payment.id,
        order_id=order.id,
        order_no=order.order_no,
        order_state=order.state,
        duplicate=duplicate,
    )


async def do_refund(
    session: AsyncSession, provider: SandboxPaymentProvider, order: SalesOrder, *, actor: str, reason: str
) -> SalesOrder:
    """Refund a paid order not yet picked up: the provider returns the money, the settlement is
    reversed in the ledger, the order becomes `refunded`."""
    if order.state not in (rules.PAID, rules.READY_FOR_PICKUP):
        service.check_transition(order, rules.REFUNDED)
    payment = await session.scalar(
        select(SalesPayment).where(SalesPayment.order_id == order.id, SalesPayment.status == "succeeded")
    )
    if payment is None:
        raise RefundRefused(f"Order {order.order_no} has no completed payment to refund.")
    await service.do_transition(session, order, rules.REFUNDED, actor=actor, note=reason)
    await settlement.do_reverse(session, order)
    payment.refund_ref = await provider.refund(payment)
    payment.status, payment.refunded_at = "refunded", utcnow()
    await session.flush()
    return order
