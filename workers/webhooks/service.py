"""Running the delivery loop in a worker process: on a thread of its own, with its own event loop
(uvloop when installed), until the worker stops."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import redis
import structlog

from shared.settings import Settings
from workers.webhooks.engine import Deliverer

__all__ = ["DeliveryThread"]

log = structlog.get_logger(__name__)


def _run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(main())
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


class DeliveryThread:
    """The webhook delivery loop of this worker; `stop` finishes the attempts in flight first."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="textfleet-webhooks", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._thread.join(timeout if timeout is not None else self.settings.webhook_timeout_s + 15)
        self.client.close()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        async def main() -> None:
            deliverer = Deliverer(self.settings, self.client)
            runner = asyncio.create_task(deliverer.run())
            while not self._stop.is_set() and not runner.done():
                await asyncio.sleep(0.1)
            deliverer.stopping.set()
            await runner

        secret = self.settings.webhook_secret
        if secret is None or not secret.get_secret_value():
            # The API accepts no webhook without a secret, so there is nothing to deliver: stay up idle
            # (a stack started without one keeps its webhook worker healthy).
            log.warning("webhooks.disabled", reason="TEXTFLEET_WEBHOOK_SECRET is not set")
            self._stop.wait()
            return
        try:
            log.info("webhooks.started", concurrency=self.settings.webhook_concurrency)
            _run(main)
            log.info("webhooks.stopped")
        except BaseException as exc:
            self.error = exc
            log.error("webhooks.crashed", error=str(exc))
            raise
