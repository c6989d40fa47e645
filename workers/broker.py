"""The Redis broker transport of a worker: kombu's, fixed so that losing Redis never kills the worker.

The bug (celery 5.7.0 / kombu 5.7.0, reported in the same shape as celery/kombu#970, #659): when
Redis goes away while a worker holds unacknowledged messages AND has a BRPOP in flight (it holds some
jobs and has room for more, the normal state of a busy threads-pool worker), Celery's consumer
cleans up in two steps (`celery.worker.consumer.Consumer.on_connection_error_after_connected`):

1. `Connection.collect()` closes the channels, then detaches the transport (`transport.client =
   None`). Closing the consumer's channel starts with `if self._in_poll: self._brpop_read()`, which
   reads the dead socket and raises a connection error *before* the channel is marked closed, so the
   channel and its unacknowledged messages survive. Closing the remote-control channel next raises
   too (it deletes its auto-delete fanout queue over the dead connection), which aborts the loop over
   the transport's channels.
2. `Connection.close()` then closes the same channel again. This time it gets as far as restoring
   its unacknowledged messages, which builds a new Redis pool from `transport.client`, now `None`:
   `AttributeError: 'NoneType' object has no attribute 'hostname'`. `maybe_close_channel` only
   swallows connection errors, so the AttributeError escapes `ignore_errors`, and Celery stops the
   worker with "Unrecoverable error" (the process then returns normally: exit code 0).

The fix, at the layer of the bug, in a Channel subclass:

- reading an in-flight BRPOP or deleting fanout bindings while closing may fail with a connection
  error: the connection is gone, so the close goes on (the first close then completes while the
  transport is still attached, and the restore is attempted with a valid pool);
- restoring unacknowledged messages when the transport is already detached, or while Redis is
  unreachable, logs how many were left and carries on. Nothing is lost by that: the messages are
  either still in Redis' unacked hash (restored by the visibility timeout when Redis kept them) or
  gone with a Redis that restarted empty, and then textfleet's sweeper re-sends every stale queued
  job from the database, which is the record of truth. A job a task thread is still running finishes
  and writes its result to the database; its late acknowledgement is dropped with the old channel.

Reconnecting: Celery's consumer retries a lost broker with kombu's default schedule (2 s, 4 s, 6 s, ...
up to 30 s between tries) and gives up after `broker_connection_max_retries` (100): after a long
outage a worker would wait up to 30 s to notice Redis is back, and after about 50 minutes it would
stop. Workers use `Connection` below (retry every `RECONNECT_INTERVAL_MAX_S` at most) with retries
unbounded (`configure_worker_broker`), so jobs flow again within seconds of Redis' return.

`tests/workers/test_broker.py` reproduces the crash with the stock transport and shows this one
survives it. Workers select this transport with Celery's `broker_transport` setting; the API only
publishes, holds no unacknowledged messages and keeps kombu's own.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import Celery
from kombu.connection import Connection as KombuConnection
from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import Empty

from shared.constants import RECONNECT_INTERVAL_MAX_S

__all__ = ["TRANSPORT", "Channel", "Connection", "QoS", "Transport", "configure_worker_broker"]

#: The value of Celery's `broker_transport` setting that selects this transport.
TRANSPORT = "workers.broker:Transport"


log = structlog.get_logger(__name__)


def configure_worker_broker(app: Celery) -> None:
    """Make `app` consume with the fixed transport, reconnect quickly and never give up on Redis."""
    app.conf.broker_transport = TRANSPORT
    app.conf.broker_connection_max_retries = None  # retry for as long as Redis is away
    app.amqp.Connection = Connection


class Connection(KombuConnection):
    """A kombu Connection whose reconnect schedule is capped at `RECONNECT_INTERVAL_MAX_S`."""

    def ensure_connection(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.update(interval_start=0.5, interval_step=0.5, interval_max=RECONNECT_INTERVAL_MAX_S)
        return super().ensure_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


class QoS(kombu_redis.QoS):
    """Unacknowledged-message bookkeeping whose restore never raises on a lost connection."""

    def restore_unacked(self, client: Any = None) -> None:
        pending = len(self._delivered)
        if self.channel.connection is None or self.channel.connection.client is None:
            # The transport was detached by `Connection.collect()`: no pool can be built any more.
            log.warning("broker.restore_skipped", unacked=pending, reason="transport detached")
            self._delivered.clear()
            return
        try:
            super().restore_unacked(client)  # type: ignore[no-untyped-call]
        except self.channel.connection_errors as exc:
            log.warning("broker.restore_failed", unacked=pending, error=type(exc).__name__)
            self._delivered.clear()


class Channel(kombu_redis.Channel):
    """A Redis channel whose close completes even when the connection is already dead."""

    QoS = QoS

    def close(self) -> None:
        if self._in_poll:
            try:
                self._brpop_read()  # type: ignore[no-untyped-call]
            except (Empty, *self.connection_errors):
                pass  # the reply of a BRPOP on a dead connection: nothing to read
        super().close()  # type: ignore[no-untyped-call]

    def queue_delete(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        if not self._closing:
            return super().queue_delete(queue, *args, **kwargs)  # type: ignore[no-untyped-call]
        try:
            return super().queue_delete(queue, *args, **kwargs)  # type: ignore[no-untyped-call]
        except self.connection_errors:
            return None  # an auto-delete binding on a dead connection: Redis dropped it or will


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with the Channel above."""

    Channel = Channel
