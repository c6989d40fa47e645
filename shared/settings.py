"""The one typed configuration of textfleet.

Every field is read from an environment variable named `TEXTFLEET_<FIELD>` (case-insensitive), a file
named by `TEXTFLEET_<FIELD>_FILE` or in `TEXTFLEET_SECRETS_DIR` (`shared.privacy.secrets`), or `.env`.
Dict fields take JSON, e.g. `TEXTFLEET_MODERATION_THRESHOLDS='{"hate": 0.3}'`.

Fields are grouped in sections (deployment, stores, broker, API server, request limits, job defaults,
models, engine, classifiers, workers, delivery, webhooks, webhook workers, secrets), each with a
header comment; every field has a description. The rules *between* fields (e.g. the broker's
visibility timeout must exceed the longest run) live in `shared.settings_rules` and are checked when
settings are built, so a deployment that breaks one fails at startup with every broken rule named.
Tuning values an operator has no reason to change are named and explained in `shared.constants`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.constants import MODERATION_CATEGORIES
from shared.files.settings import FilesSettings
from shared.inputs.settings import InputSettings
from shared.privacy.settings import PrivacySettings, SecretSources
from shared.quotas.settings import QuotaSettings
from shared.settings_rules import cross_field_problems
from shared.tenancy.settings import AuthSettings
from shared.webhooks.settings import WebhookSafetySettings

__all__ = [
    "MODERATION_CATEGORIES",
    "Settings",
    "get_settings",
]


def _default_models_dir() -> Path:
    return Path.home() / ".cache" / "textfleet" / "models"


class Settings(SecretSources):
    """All of textfleet's settings. Each field is `TEXTFLEET_<NAME>` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="TEXTFLEET_", env_file=".env", extra="ignore", case_sensitive=False
    )

    # --- Deployment ---------------------------------------------------------------------------
    # Which environment this is and how it logs.
    environment: Literal["development", "production"] = Field(
        "development", description="`production` switches logs to JSON and tightens defaults."
    )
    log_level: str = Field("INFO", description="Root log level (DEBUG, INFO, WARNING, ...).")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="Log renderer; `auto` is JSON in production and console in development."
    )

    # --- Stores -------------------------------------------------------------------------------
    # Where the record of truth (SQL) and the broker (Redis) live.
    database_url: str = Field(
        "sqlite:///textfleet.db",
        description="SQLAlchemy URL of the job database, e.g. postgresql+psycopg://user@host/db. "
        "SQLite is the embedded default.",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis URL: Celery broker, job events (pub/sub) and worker heartbeats. "
        "`textfleet dev` starts an embedded Redis when this is not set.",
    )

    # --- Broker -------------------------------------------------------------------------------
    # How Celery uses Redis (both the API and the workers read these).
    broker_visibility_timeout_s: float = Field(
        3600.0,
        gt=0,
        description="Seconds a delivered, unacknowledged Celery message stays invisible before Redis hands "
        "it out again (Celery's `visibility_timeout`). Tasks are acknowledged late, so it must exceed the "
        "longest run (max_timeout_s + running_grace_s) and the longest retry delay (retry_backoff_max_s), "
        "or a job still running (or waiting for its retry) is delivered twice.",
    )
    job_group_size: int = Field(
        32,
        gt=0,
        le=1000,
        description="Most classify-queue jobs one broker message carries: a worker claims, runs and "
        "acknowledges them together, each job keeping its own states. 1: a message per job.",
    )

    # --- API server ---------------------------------------------------------------------------
    # How one API process serves: address, pools, long polling, batch inserts.
    api_host: str = Field("127.0.0.1", description="Address `textfleet api` binds.")
    api_port: int = Field(8000, description="Port `textfleet api` binds.")
    public_url: str | None = Field(
        None,
        description="Base URL clients use to reach the API (for `Location` headers); default: request URL.",
    )
    api_redis_max_connections: int = Field(
        64,
        gt=0,
        description="Size of an API process's Redis connection pool (queue depth, readiness, metrics; "
        "long polling has its own single connection). A request finding it exhausted waits for a free one.",
    )
    api_redis_pool_timeout_s: float = Field(
        5.0,
        gt=0,
        description="How long an API request waits for a free pooled Redis connection before it fails.",
    )
    wait_max_waiters: int = Field(
        5000,
        gt=0,
        description="Most `GET /v1/jobs/{id}?wait=` requests one API process holds at once (they share one "
        "Redis subscription); above it `?wait` answers at once with the job's current state.",
    )
    bulk_chunk_size: int = Field(
        1000,
        gt=0,
        description="Rows per multi-row INSERT (one database round trip) when storing a batch of jobs.",
    )

    # --- Request limits -----------------------------------------------------------------------
    # What one request may ask for. Validators read them through `shared.limits`, so the
    # limits of the app's own settings (`create_app(settings)`) are the ones enforced.
    max_input_chars: int = Field(32_000, gt=0, description="Longest text accepted in any job input.")
    max_tokens_limit: int = Field(1024, gt=0, description="Largest `params.max_tokens` a job may ask for.")
    max_timeout_s: float = Field(
        1800.0,
        gt=0,
        description="Largest `params.timeout_s`; with running_grace_s, below broker_visibility_timeout_s.",
    )
    max_ttl_s: float = Field(
        7 * 86400.0, gt=0, description="Largest `params.ttl_s` (time allowed in the queue)."
    )
    max_schema_chars: int = Field(
        16_000,
        gt=0,
        description="Longest JSON Schema (as compact JSON), regex or pattern a job may constrain output to.",
    )
    max_wait_s: float = Field(60.0, gt=0, description="Longest `?wait=` a client may hold a GET request.")
    list_max_limit: int = Field(200, gt=0, description="Largest page size of `GET /v1/jobs`.")
    bulk_max_jobs: int = Field(
        10_000, gt=0, description="Most jobs one `POST /v1/jobs/batch` request may submit."
    )

    # --- Job defaults -------------------------------------------------------------------------
    # What a worker uses when a job leaves a parameter out (never frozen into the stored row).
    default_max_tokens: int = Field(256, gt=0, description="`max_tokens` used when a job gives none.")
    summary_max_tokens: int = Field(128, gt=0, description="Default `max_tokens` of a summary.")
    extract_max_tokens: int = Field(
        1024,
        gt=0,
        description="`max_tokens` of an `extract` job that gives none (generous: cut-off JSON fails a job).",
    )
    default_timeout_s: float = Field(
        300.0, gt=0, description="Run-time limit of a job that gives no `params.timeout_s`."
    )

    # --- Models -------------------------------------------------------------------------------
    # Which models the workers load, and where prepared models live.
    models_dir: Path = Field(
        default_factory=_default_models_dir,
        description="Where `textfleet models prepare` builds the default models.",
    )
    generation_model: str | None = Field(
        None,
        description="Hugging Face id or local path of the generation model; "
        "default: SmolLM2-135M-Instruct prepared under models_dir.",
    )
    encoder_model: str | None = Field(
        None,
        description="Hugging Face id or local path of the classifier encoder; "
        "default: all-MiniLM-L6-v2 prepared under models_dir.",
    )
    heads_dir: Path | None = Field(
        None, description="Directory of the trained classifier heads; default: models_dir/heads."
    )

    # --- Generation engine (vLLM) -------------------------------------------------------------
    # How a generation worker starts and feeds its engine.
    max_model_len: int = Field(2048, gt=0, description="Context length the engine is started with.")
    max_num_seqs: int | None = Field(
        None, gt=0, description="Sequences the engine batches at once (vLLM `max_num_seqs`); default: vLLM's."
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Fraction of GPU memory vLLM may use (GPU machines)."
    )
    cpu_kvcache_gib: int = Field(
        2, gt=0, description="KV-cache size in GiB on CPU machines (sets VLLM_CPU_KVCACHE_SPACE)."
    )
    enforce_eager: bool = Field(
        True, description="Skip CUDA-graph capture (faster start, slower steady state)."
    )
    engine_dtype: str = Field("auto", description="vLLM dtype (auto, bfloat16, float16, float32).")
    generate_concurrency: int | None = Field(
        None, gt=0, description="Jobs a generation worker runs at once; default: what its engine holds."
    )

    # --- Classifiers --------------------------------------------------------------------------
    # How a classify worker batches, and the decision thresholds of its heads.
    classify_batch_size: int = Field(64, gt=0, description="Largest batch of one classifier forward pass.")
    classify_max_wait_ms: float = Field(
        5.0, ge=0, description="How long a classifier waits to fill a batch before running it."
    )
    classify_concurrency: int = Field(
        64, gt=0, description="Jobs a classify worker holds at once (threads feeding the batcher)."
    )
    classify_device: str = Field("auto", description="torch device for classifiers: auto, cpu, cuda, cuda:N.")
    moderation_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Per-category score above which a category is flagged; missing ones use "
        "moderation_default_threshold. JSON, e.g. '{\"hate\": 0.3}'.",
    )
    moderation_default_threshold: float = Field(
        0.5, ge=0, le=1, description="Threshold of categories not named in moderation_thresholds."
    )
    risk_medium_threshold: float = Field(
        0.4, ge=0, le=1, description="Risk score from which level is medium."
    )
    risk_high_threshold: float = Field(0.7, ge=0, le=1, description="Risk score from which level is high.")

    # --- Workers ------------------------------------------------------------------------------
    # Worker processes: heartbeats, side port, shutdown, and the dev stack around them.
    worker_heartbeat_s: float = Field(10.0, gt=0, description="Seconds between worker heartbeats in Redis.")
    worker_http_port: int | None = Field(
        None,
        description="Side HTTP port of a worker serving /healthz (fresh heartbeat) and /metrics; "
        "off when unset.",
    )
    worker_http_host: str = Field(
        "127.0.0.1",
        description="Address the worker side port binds to: loopback by default (`textfleet dev`, one "
        "machine); the pod IP in Kubernetes (set from status.podIP), where probes and Prometheus reach it.",
    )
    worker_drain_s: float = Field(
        60.0,
        ge=0,
        description="On SIGTERM a worker stops taking jobs and lets running ones finish for this long, then "
        "aborts the rest and leaves them to be delivered again. Keep Kubernetes' "
        "terminationGracePeriodSeconds above it.",
    )
    worker_hostname: str | None = Field(
        None, description="Celery node name of a worker; default: <queues>@<host>-<pid>."
    )
    dev_restart_backoff_s: float = Field(
        1.0,
        gt=0,
        description="`textfleet dev` restarts a child that died by itself after this many seconds, doubling "
        "on each failure in a row (up to 60 s).",
    )
    data_dir: Path = Field(
        Path(".textfleet"),
        description="Where `textfleet dev` keeps its embedded Redis and SQLite files.",
    )

    # --- Delivery guarantees ------------------------------------------------------------------
    # Retries, the sweeper that closes gaps between database and queue, idempotency.
    max_attempts: int = Field(
        3,
        ge=1,
        description="Runs a job gets when failures are transient (engine overloaded, DB or Redis down).",
    )
    retry_backoff_s: float = Field(2.0, gt=0, description="First retry delay; doubles per attempt.")
    retry_backoff_max_s: float = Field(60.0, gt=0, description="Longest delay between two attempts of a job.")
    sweep_interval_s: float = Field(
        10.0, gt=0, description="How often one worker of the fleet sweeps for stranded or expired jobs."
    )
    requeue_after_s: float = Field(
        300.0,
        gt=0,
        description="A job still `queued` this long after it was last enqueued is enqueued again (its "
        "message may have been lost, e.g. by a Redis restart). Duplicates are harmless: one claim wins.",
    )
    running_grace_s: float = Field(
        30.0, gt=0, description="Slack past a running job's time limit before the sweeper takes it back."
    )
    idempotency_ttl_s: float = Field(86400.0, gt=0, description="How long an Idempotency-Key lives.")

    # --- Webhooks -----------------------------------------------------------------------------
    # Delivery policy of job webhooks.
    webhook_timeout_s: float = Field(10.0, gt=0, description="Timeout of one webhook delivery attempt.")
    webhook_max_age_s: float = Field(
        86400.0, gt=0, description="A webhook is retried with backoff until this long after its event."
    )
    webhook_safety: WebhookSafetySettings = Field(
        default_factory=WebhookSafetySettings,
        description="Allowed webhook destinations and DNS limits (`shared.webhooks.settings`).",
    )

    # --- Webhook workers ----------------------------------------------------------------------
    # Throughput and back-pressure of a webhook worker.
    webhook_concurrency: int = Field(
        512, ge=1, description="Webhook requests one webhook worker keeps in flight at once (all endpoints)."
    )
    webhook_endpoint_concurrency: int = Field(
        64,
        ge=1,
        description="Webhook requests in flight at once to one endpoint (scheme, host, port); more wait "
        "in the due set, so a slow endpoint only delays its own events.",
    )
    webhook_batch: int = Field(
        500, ge=1, le=5000, description="Due deliveries a webhook worker takes from Redis per round."
    )
    webhook_poll_s: float = Field(
        0.02, gt=0, le=5, description="Wait of a webhook worker before it looks again when nothing is due."
    )
    webhook_flush_ms: float = Field(
        20.0, gt=0, le=5000, description="How often a webhook worker writes its batch of delivery outcomes."
    )
    webhook_http2: bool = Field(
        False,
        description="Send https webhooks over HTTP/2 where the receiver offers it (httpx with h2); off: "
        "HTTP/1.1 keep-alive connections (aiohttp), which cost a webhook worker far less CPU per request.",
    )
    webhook_breaker_failures: int = Field(
        5, ge=1, description="Failed attempts in a row that open an endpoint's circuit breaker."
    )
    webhook_breaker_cooldown_s: float = Field(
        5.0, gt=0, description="How long a breaker stays open before one probe is let through."
    )
    webhook_breaker_max_cooldown_s: float = Field(
        300.0, gt=0, description="Longest cooldown; each failed probe doubles it up to this."
    )

    # --- Files and batches (OpenAI's Batch API) -----------------------------------------------
    files: FilesSettings = Field(
        default_factory=FilesSettings,
        description="Where uploaded files live and how batches run: the `TEXTFLEET_FILES_*` and "
        "`TEXTFLEET_BATCH_*` variables (`shared.files.settings`), read from the same environment.",
    )
    inputs: InputSettings = Field(default_factory=InputSettings, description="Request size caps.")
    quotas: QuotaSettings = Field(default_factory=QuotaSettings, description="`TEXTFLEET_QUOTA_*` limits")

    # --- Tenants and API keys -----------------------------------------------------------------
    auth: AuthSettings = Field(default_factory=AuthSettings, description="`TEXTFLEET_AUTH_*`: API keys.")
    privacy: PrivacySettings = Field(default_factory=PrivacySettings, description="`TEXTFLEET_RETENTION_*`")

    # --- Secrets ------------------------------------------------------------------------------
    # No defaults: unset means the feature is off.
    webhook_secret: SecretStr | None = Field(
        None, description="Secret that signs webhook deliveries (`whsec_...`); required to accept webhooks."
    )

    @field_validator("moderation_thresholds")
    @classmethod
    def _known_categories(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(MODERATION_CATEGORIES))
        if unknown:
            raise ValueError(f"unknown moderation categories: {', '.join(unknown)}")
        for name, threshold in value.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold of {name!r} must be within [0, 1]")
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Settings:
        """Rules between settings, checked at startup: every broken one is named in one error."""
        problems = cross_field_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # --- Derived ---------------------------------------------------------------------------------
    @property
    def json_logs(self) -> bool:
        """Whether logs render as JSON lines."""
        if self.log_format == "auto":
            return self.environment == "production"
        return self.log_format == "json"

    def moderation_threshold(self, category: str) -> float:
        """The flagging threshold of one moderation category."""
        return self.moderation_thresholds.get(category, self.moderation_default_threshold)

    @property
    def generation_model_path(self) -> str:
        """What vLLM loads: the configured model, or the prepared default."""
        return self.generation_model or str(self.models_dir / "smollm2-135m-instruct")

    @property
    def encoder_model_path(self) -> str:
        """What the classifiers' encoder loads: the configured model, or the prepared default."""
        return self.encoder_model or str(self.models_dir / "all-minilm-l6-v2")

    @property
    def heads_path(self) -> Path:
        """Where the classifier heads live."""
        return self.heads_dir or self.models_dir / "heads"

    @property
    def effective_generate_concurrency(self) -> int | None:
        """Jobs one generation worker runs at once if set; None: its engine's capacity decides."""
        return self.generate_concurrency or self.max_num_seqs


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once. Tests call `get_settings.cache_clear()` after changing env."""
    return Settings()
