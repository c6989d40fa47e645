"""What a worker process holds for its whole life: settings, its loaded models and a Redis client.

Models are loaded once, when the process starts, and every task thread uses the same objects.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import redis
import structlog
from celery import Celery

from shared.constants import Queue
from shared.errors import ConfigurationError
from shared.queueing import make_celery
from shared.settings import Settings
from workers.classifiers.base import ClassifierSuite
from workers.engines.base import GenerationEngine
from workers.runner import JobRunner
from workers.store import JobStore

__all__ = ["WorkerRuntime", "current", "install", "load_runtime", "uninstall"]

log = structlog.get_logger(__name__)


@dataclass
class WorkerRuntime:
    """The loaded models of one worker process and the clients its tasks share."""

    settings: Settings
    hostname: str
    redis: redis.Redis
    queues: tuple[Queue, ...] = ()
    generation: GenerationEngine | None = None
    classifiers: ClassifierSuite | None = None
    in_flight: set[str] = field(default_factory=set)
    #: set when the worker begins its shutdown drain; engine aborts then mean "give the job back"
    draining: threading.Event = field(default_factory=threading.Event)
    #: claims and runs the jobs of this process's messages (`workers.groups.attach_runner`)
    runner: JobRunner | None = None
    _store: JobStore | None = None
    _celery: Celery | None = None

    @property
    def celery(self) -> Celery:
        """A Celery app for this worker's settings (to re-send jobs and webhook deliveries)."""
        if self._celery is None:
            self._celery = make_celery(self.settings)
        return self._celery

    @property
    def store(self) -> JobStore:
        """The batched database path of this worker (created on first use)."""
        if self._store is None:
            self._store = JobStore(self.settings.database_url, self.redis)
        return self._store

    def require_generation(self) -> GenerationEngine:
        """The generation engine, or a clear error if this worker has none."""
        if self.generation is None:
            raise ConfigurationError("this worker has no generation engine (start it with --queues generate)")
        return self.generation

    def require_classifiers(self) -> ClassifierSuite:
        """The classifier suite, or a clear error if this worker has none."""
        if self.classifiers is None:
            raise ConfigurationError("this worker has no classifiers (start it with --queues classify)")
        return self.classifiers

    def close(self) -> None:
        """Release the models and connections (after the jobs: the pool's threads use them)."""
        if self.runner is not None:
            self.runner.close()
        if self.generation is not None:
            self.generation.close()
        if self.classifiers is not None:
            self.classifiers.close()
        if self._store is not None:
            self._store.close()
        self.redis.close()


_current: WorkerRuntime | None = None


def install(runtime: WorkerRuntime) -> None:
    """Make `runtime` the one the tasks of this process use."""
    global _current
    _current = runtime


def uninstall() -> None:
    """Forget the installed runtime (tests)."""
    global _current
    _current = None


def current() -> WorkerRuntime:
    """The runtime of this worker process."""
    if _current is None:
        raise ConfigurationError("no worker runtime installed: start workers with `textfleet worker`")
    return _current


def load_runtime(
    settings: Settings, queues: tuple[Queue, ...], hostname: str, *, instant_classifiers: bool = False
) -> WorkerRuntime:
    """Load (and warm up) the models the given queues need. Heavy imports happen here, lazily.

    `instant_classifiers` serves the classify queue without a model (`classifiers.instant`: what
    `textfleet bench --scenario overhead` measures); refused in production."""
    if instant_classifiers and settings.environment == "production":
        raise ConfigurationError("the instant classifiers are a benchmark tool: refused in production")
    runtime = WorkerRuntime(
        settings=settings,
        hostname=hostname,
        redis=redis.Redis.from_url(settings.redis_url),
        queues=queues,
    )
    if Queue.GENERATE in queues:
        from workers.engines.vllm_engine import VLLMEngine

        log.info("worker.loading", model=settings.generation_model_path, queue=Queue.GENERATE.value)
        runtime.generation = VLLMEngine.from_settings(settings)
    if Queue.CLASSIFY in queues and instant_classifiers:
        from workers.classifiers.instant import InstantClassifierSuite

        log.warning("worker.instant_classifiers", queue=Queue.CLASSIFY.value, note="no model: benchmark only")
        runtime.classifiers = InstantClassifierSuite.from_settings(settings)
    elif Queue.CLASSIFY in queues:
        from workers.classifiers.suite import EncoderClassifierSuite

        log.info("worker.loading", model=settings.encoder_model_path, queue=Queue.CLASSIFY.value)
        runtime.classifiers = EncoderClassifierSuite.from_settings(settings)
    return runtime
