"""Background work of sales: expiring unpaid orders at their deadline.

Creating orders schedules one `sales.orders.expire` job per tenant and minute of deadlines (see
`service.schedule_expiry`); each run expires what is due, continues at once while a full batch was
expired, and schedules itself again for the earliest deadline still ahead, so that a lost schedule
heals with the next run.
"""

from __future__ import annotations

from zhongtai.core.clock import utcnow
from zhongtai.core.jobs import JobContext, enqueue, job_handler
from zhongtai.sales import service


@job_handler(service.EXPIRE_TOPIC)
async def expire_orders(ctx: JobContext) -> None:
    expired = await service.expire_due(ctx.session, utcnow())
    if expired >= service.EXPIRE_BATCH:  # more are due: continue in a fresh job, each commit stays small
        await enqueue(ctx.session, service.EXPIRE_TOPIC, {}, tenant_id=ctx.tenant_id)
        return
    upcoming = await service.next_deadline(ctx.session)
    if upcoming is not None:
        await service.schedule_expiry(ctx.session, ctx.tenant_id, service.expiry_window(upcoming))
