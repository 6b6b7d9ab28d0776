"""Background work of flash sales: stock of expired orders goes back to the sale (the `OrderExpired`
subscriber, and the job that releases it in the Redis gate)."""

from __future__ import annotations

import time
import uuid

from redis.asyncio import Redis

from zhongtai.core.jobs import JobContext, job_handler
from zhongtai.core.settings import Settings
from zhongtai.flashsale.gate import RedisGate, sale_config
from zhongtai.flashsale.models import FlashSale
from zhongtai.flashsale.service import RELEASE_TOPIC


@job_handler(RELEASE_TOPIC)
async def release_stock(ctx: JobContext) -> None:
    """Idempotent: the release script adds the reference to the sale's released set first."""
    settings = ctx.database.settings if ctx.database is not None else Settings()
    if settings.redis_url is None:
        return
    sale = await ctx.session.get(FlashSale, uuid.UUID(ctx.payload["sale_id"]))
    if sale is None:
        return
    redis = Redis.from_url(settings.redis_url)
    try:
        gate = RedisGate(redis, settings.redis_prefix)
        await gate.release(
            sale_config(sale, time.monotonic()),
            ctx.payload["reference"],
            ctx.payload["consumer_id"],
            int(ctx.payload["quantity"]),
        )
    finally:
        await redis.aclose()
