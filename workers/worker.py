"""Starting a worker process: load models once, then consume queues with Celery's threads pool.

vLLM starts its own engine process and cannot live in Celery's prefork pool, so every worker runs
the `threads` pool: task threads submit to the one engine (or classifier batcher) of the process,
which batches their requests together.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

import structlog
from celery.signals import worker_shutting_down

from shared.constants import Queue
from shared.logging import configure_logging, safe_message
from shared.settings import Settings
from workers import runtime as runtime_module
from workers.control import CancelListener, drain
from workers.engines.base import GenerationEngine
from workers.engines.capacity import engine_capacity, generate_concurrency
from workers.groups import attach_runner
from workers.heartbeat import Heartbeat, serve_side_port
from workers.metrics import instrument_runtime
from workers.sweeper import Sweeper
from workers.webhooks import DeliveryThread

__all__ = ["CELERY_PER_TASK_LOGGERS", "default_concurrency", "default_hostname", "run_worker"]

log = structlog.get_logger(__name__)


def default_concurrency(
    settings: Settings, queues: tuple[Queue, ...], generation: GenerationEngine | None = None
) -> int:
    """Jobs held at once: what the started generation engine holds (`workers.engines.capacity`) or
    the classifier batch. (Webhook deliveries are not Celery tasks: `webhook_concurrency` bounds them.)"""
    total = 0
    if Queue.GENERATE in queues:
        total += generate_concurrency(settings, engine_capacity(generation))
    if Queue.CLASSIFY in queues:
        total += settings.classify_concurrency
    return max(total, 1)


def default_hostname(queues: tuple[Queue, ...]) -> str:
    """`<queues>@<host>-<pid>`: unique per process, readable in job rows."""
    return f"{'+'.join(q.value for q in queues)}@{socket.gethostname()}-{os.getpid()}"


def run_worker(
    settings: Settings,
    queues: tuple[Queue, ...],
    concurrency: int | None = None,
    *,
    instant_classifiers: bool = False,
) -> None:
    """Load models, then consume `queues` until stopped (SIGTERM/SIGINT: warm shutdown).

    The `webhooks` queue is not a Celery queue: it is served by the async delivery loop
    (`workers.webhooks.DeliveryThread`, bounded by `webhook_concurrency`, not by `concurrency`); a worker
    with only that queue runs no Celery consumer."""
    configure_logging(settings, process="worker")
    hostname = settings.worker_hostname or default_hostname(queues)
    webhooks_only = queues == (Queue.WEBHOOKS,)
    if webhooks_only and concurrency:  # a webhook worker's concurrency is its deliveries in flight
        settings = settings.model_copy(
            update={
                "webhook_concurrency": concurrency,
                "webhook_endpoint_concurrency": min(settings.webhook_endpoint_concurrency, concurrency),
            }
        )
    rt = runtime_module.load_runtime(settings, queues, hostname, instant_classifiers=instant_classifiers)
    concurrency = concurrency or default_concurrency(settings, queues, rt.generation)
    attach_runner(rt, concurrency)
    runtime_module.install(rt)
    instrument_runtime(rt)
    heartbeat = Heartbeat(rt)
    heartbeat.start()
    side = (
        serve_side_port(heartbeat, settings.worker_http_port, settings.worker_http_host)
        if settings.worker_http_port
        else None
    )
    cancels = CancelListener(rt)
    cancels.start()
    sweeper = Sweeper(settings, rt.redis, rt.celery, owner=hostname)
    sweeper.start()

    deliveries = DeliveryThread(settings) if Queue.WEBHOOKS in queues else None
    if deliveries is not None:
        deliveries.start()
    celery_queues = [q.value for q in queues if q is not Queue.WEBHOOKS]
    log.info("worker.ready", hostname=hostname, queues=[q.value for q in queues], concurrency=concurrency)
    try:
        exitcode = _consume(rt, celery_queues, concurrency) if celery_queues else _wait_for_signal(deliveries)
    finally:
        sweeper.stop()
        cancels.stop()
        heartbeat.stop()
        if side is not None:
            side.shutdown()
        if deliveries is not None:
            deliveries.stop()
        rt.close()
        runtime_module.uninstall()
        log.info("worker.stopped", hostname=hostname)
    if exitcode:
        log.error("worker.exited_unexpectedly", hostname=hostname, exit_code=exitcode)
        raise SystemExit(exitcode)


def _consume(rt: runtime_module.WorkerRuntime, queues: list[str], concurrency: int) -> int:
    """Run Celery's consumer on `queues` until it stops; its exit code (see `_exit_code`)."""
    from workers.celery_app import app  # registers the tasks

    settings = rt.settings
    shutdown_requested = threading.Event()

    @worker_shutting_down.connect(weak=False)  # type: ignore[untyped-decorator]
    def _drain_on_shutdown(**_: object) -> None:
        shutdown_requested.set()  # a signal asked for it (SIGTERM, SIGINT, SIGQUIT)
        # Celery stops taking messages and waits for running tasks; bound that wait.
        threading.Thread(
            target=drain, args=(rt, settings.worker_drain_s), name="textfleet-drain", daemon=True
        ).start()

    if settings.log_level.upper() != "DEBUG":  # before the worker builds its tracers and strategies
        for name in CELERY_PER_TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        worker = app.Worker(
            hostname=rt.hostname,
            queues=queues,
            pool="threads",
            concurrency=concurrency,
            prefetch_multiplier=1,
            loglevel=settings.log_level.upper(),
            without_gossip=True,
            without_mingle=True,
            without_heartbeat=True,
            optimization="fair",
        )
        worker.start()
        return _exit_code(worker.exitcode, requested=shutdown_requested.is_set())
    finally:
        worker_shutting_down.disconnect(_drain_on_shutdown)


#: Celery's loggers of one INFO line per task ("Task ... received", "Task ... succeeded in ..."): they
#: repeat `job.started` and `job.finished` and, at thousands of jobs a second, cost a worker about a
#: twentieth of its CPU (`textfleet bench --scenario overhead --profile`). Raised to WARNING unless the
#: log level is DEBUG; their warnings and errors still show.
CELERY_PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")

#: Exit code of a worker that stopped without being asked to (EX_SOFTWARE): whatever runs it restarts it.
EXIT_UNEXPECTED = 70


def _exit_code(celery_exitcode: int | str | None, *, requested: bool) -> int:
    """0 for a requested shutdown that went well; non-zero otherwise, so that a supervisor that restarts
    only failed processes (dev, the GPU supervisor, Kubernetes' and compose's restart policies) does."""
    if isinstance(celery_exitcode, int) and celery_exitcode != 0:
        return celery_exitcode
    if celery_exitcode not in (None, 0):
        return EXIT_UNEXPECTED  # Celery stores a signal's name for some cold shutdowns
    return 0 if requested else EXIT_UNEXPECTED


def _wait_for_signal(deliveries: DeliveryThread | None) -> int:
    """Block until SIGTERM or SIGINT: 0; or until the delivery loop ends on its own: non-zero."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("worker.stopping", signal=signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(0.5):
            if deliveries is not None and not deliveries.is_alive():
                error = deliveries.error
                log.error("worker.delivery_loop_stopped", error=safe_message(error) if error else None)
                return EXIT_UNEXPECTED
        return 0
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
