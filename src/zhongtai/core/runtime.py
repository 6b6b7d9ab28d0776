"""The running platform: settings, database, Redis, rate limiter, crypto, senders, in-process worker.

One `Runtime` per process; the web app keeps it in `app.state.runtime`, the CLI builds its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio import Redis

from zhongtai.core.crypto import Crypto
from zhongtai.core.db import Database
from zhongtai.core.jobs import Worker
from zhongtai.core.ratelimit import InProcessRateLimiter, RateLimiter, RedisRateLimiter
from zhongtai.core.settings import Settings
from zhongtai.core.sms import SandboxSmsSender, SmsSender

log = logging.getLogger("zhongtai.runtime")

# Background loops a module runs in every process that runs the in-process worker (e.g. the scan
# stream worker of authenticity): `loop(runtime, stop)` returns when `stop` is set.
BackgroundLoop = Callable[["Runtime", asyncio.Event], Coroutine[Any, Any, None]]
BACKGROUND: dict[str, BackgroundLoop] = {}


def register_background(name: str, loop: BackgroundLoop) -> None:
    BACKGROUND[name] = loop


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.crypto = Crypto(settings.secrets)
        self.db = Database(settings)
        self.redis: Redis | None = (
            Redis.from_url(settings.redis_url, decode_responses=False) if settings.redis_url else None
        )
        self.limiter: RateLimiter = (
            RedisRateLimiter(self.redis, settings.redis_prefix) if self.redis else InProcessRateLimiter()
        )
        self.sms: SmsSender = SandboxSmsSender()
        self._worker_stop = asyncio.Event()
        self._worker_task: asyncio.Task[None] | None = None
        self.worker: Worker | None = None
        self._background: list[asyncio.Task[None]] = []

    @property
    def tier(self) -> str:
        return "embedded" if self.settings.is_sqlite and self.redis is None else "production"

    async def start(self, *, with_worker: bool | None = None, worker_name: str | None = "in-process") -> None:
        """With the worker (the settings' `in_process_worker` unless told): the job worker and every
        registered background loop (the scan stream's persister, …) run in this process until `stop`."""
        if with_worker is None:
            with_worker = self.settings.in_process_worker
        if with_worker:
            self.worker = Worker(self.db, name=worker_name)
            self._worker_stop.clear()
            self._worker_task = asyncio.create_task(
                self.worker.run_forever(self._worker_stop, poll_seconds=self.settings.worker_poll_seconds)
            )
            self._background = [
                asyncio.create_task(loop(self, self._worker_stop), name=name) for name, loop in BACKGROUND.items()
            ]

    async def stop(self) -> None:
        if self._worker_task is not None:
            self._worker_stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._worker_task, timeout=10)
            self._worker_task = None
        for task in self._background:
            self._worker_stop.set()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(task, timeout=10)
        self._background = []
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()
