"""Background work after a draw: each winner's order, the winners told, unpaid wins forfeited at the
deadline; and the lottery's side of the orders' payments and expiries (sales' domain events)."""

from __future__ import annotations

import uuid
from datetime import timedelta, timezone

from sqlalchemy import select

from zhongtai.core.clock import utcnow
from zhongtai.core.consumers import PHONE_PURPOSE
from zhongtai.core.crypto import Crypto
from zhongtai.core.jobs import JobContext, enqueue, job_handler
from zhongtai.core.models import Consumer, Tenant
from zhongtai.core.settings import Settings
from zhongtai.core.sms import SandboxSmsSender
from zhongtai.lottery import service
from zhongtai.lottery.models import WIN_PENDING_PAYMENT, LotterySession, LotteryWin

CHINA = timezone(timedelta(hours=8))  # members read the deadline in China Standard Time, not the server's zone

CHINA = timezone(timedelta(hours=8))  # members read the deadline in China Standard Time, not the server's zone


@job_handler(service.NOTIFY_TOPIC)
async def notify_winners(ctx: JobContext) -> None:
    """Send each winner not yet told an SMS; idempotent through `notified_at`."""
    settings = ctx.database.settings if ctx.database is not None else Settings()
    crypto = Crypto(settings.secrets)
    sms = SandboxSmsSender()
    session_id = uuid.UUID(ctx.payload["session_id"])
    lottery = await ctx.session.get(LotterySession, session_id)
    tenant = await ctx.session.get(Tenant, ctx.tenant_id)
    if lottery is None or tenant is None:
        return
    rows = await ctx.session.execute(
        select(LotteryWin, Consumer.phone_ciphertext)
        .join(Consumer, Consumer.id == LotteryWin.consumer_id)
        .where(LotteryWin.session_id == session_id, LotteryWin.notified_at.is_(None))
        .limit(500)
    )
    found = rows.all()
    await service.do_create_win_orders(ctx.session, lottery, [win for win, _ in found])
    for win, phone_ciphertext in found:
        phone = crypto.pii.decrypt(phone_ciphertext, purpose=PHONE_PURPOSE)
        due = win.payment_due_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
        await sms.send(
            ctx.session,
            tenant_id=ctx.tenant_id,
            phone_e164=phone,
            text=f"【{tenant.name}】恭喜，您在“{lottery.title}”申购中签，请于 {due} 前完成支付，逾期视为放弃。",
        )
        win.notified_at = utcnow()
    await ctx.session.flush()
    if len(found) == 500:  # more to tell: continue in a fresh job, so that each commit stays small
        await enqueue(ctx.session, service.NOTIFY_TOPIC, ctx.payload)


@job_handler(service.FORFEIT_TOPIC)
async def forfeit_unpaid(ctx: JobContext) -> None:
    session_id = uuid.UUID(ctx.payload["session_id"])
    await service.do_forfeit_unpaid(ctx.session, session_id)
    pending = await ctx.session.scalar(
        select(LotteryWin.payment_due_at)
        .where(LotteryWin.session_id == session_id, LotteryWin.status == WIN_PENDING_PAYMENT)
        .order_by(LotteryWin.payment_due_at)
        .limit(1)
    )
    if pending is not None:  # a deadline still ahead (e.g. the job ran early): look again then
        delay = max(1.0, (pending - utcnow()).total_seconds() + 1)
        await enqueue(ctx.session, service.FORFEIT_TOPIC, ctx.payload, delay_seconds=delay)
