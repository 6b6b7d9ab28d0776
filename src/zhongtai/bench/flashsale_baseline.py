"""The baseline of `zhongtai bench flashsale`: a bare ASGI endpoint that only runs the gate's Lua script.

`POST /buy` calls the same script as the platform's gate for one buy per request (a fresh random member
and reference each time, no pass, no limits, no sale cache, no coalescing of concurrent buys) and
answers 202 with the reference; `GET /healthz` answers for the benchmark's start-up check. The sale is
`ZT_BENCH_FLASHSALE_SALE` (its stock set by the benchmark).
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from redis.asyncio import Redis

from zhongtai.core.settings import Settings
from zhongtai.flashsale.gate import BUY_LUA, IDEMPOTENCY_TTL_SECONDS, SaleKeys

_HEADERS = [(b"content-type", b"application/json")]


def baseline_factory() -> Any:
    """Entry point for granian (`--factory zhongtai.bench.flashsale_baseline:baseline_factory`)."""
    settings = Settings()
    assert settings.redis_url, "the baseline needs ZT_REDIS_URL"
    redis = Redis.from_url(settings.redis_url)
    script = redis.register_script(BUY_LUA)
    keys = SaleKeys(settings.redis_prefix, uuid.UUID(os.environ["ZT_BENCH_FLASHSALE_SALE"]))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await redis.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/buy":
            while (await receive()).get("more_body"):
                pass
            consumer = os.urandom(16).hex()
            outcome, reference, left = await script(
                keys=[keys.stock, keys.buyers, keys.stream, keys.closed, f"{keys.idempotency}{consumer}:"],
                args=[1, IDEMPOTENCY_TTL_SECONDS, consumer, 1, "FS" + os.urandom(10).hex(), 0, ""],
            )
            status = 202 if outcome == 5 else 409
            body = json.dumps({"reference": reference.decode(), "stock_left": left}).encode()
        else:
            status, body = 200, b'{"status":"ok"}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
