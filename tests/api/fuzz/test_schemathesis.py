"""schemathesis against the live API (real HTTP, PostgreSQL, Redis), from the OpenAPI document it
serves: every check (no 5xx, every status, content type, header and body as documented, schema-valid
input accepted and invalid input refused, allowed methods, resources gone after a delete...) in every
phase, stateful sequences following the document's links included.

The run's settings are in schemathesis.toml beside this file (fixed seed, deterministic generation,
bounded examples). Workers are stood in for by `finisher.finishing_jobs`, so routes that wait for a
job answer at once. On failure the assertion shows schemathesis' own report: each failing request as
a `curl` command, the check it broke, and the response. Authentication is on: the run presents a
key of its own tenant with every scope.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from shared.db.migrate import upgrade
from shared.db.models import Job
from shared.db.session import session_scope
from shared.tenancy.principal import Scope
from tests.api.fuzz.finisher import finishing_jobs
from tests.utils.live_api import LiveApi, live_api
from tests.utils.services import postgres_database
from tests.utils.tenancy import make_key

CONFIG = Path(__file__).with_name("schemathesis.toml")
RUN_TIMEOUT_S = 600
#: A secret so that webhook URLs are accepted (without one every `webhook` is refused by design).
WEBHOOK_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def fuzzed_api(redis_url: str, tmp_path: Path) -> Iterator[tuple[LiveApi, str]]:
    """The API served for real on a fresh PostgreSQL database and an emptied Redis database."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    with postgres_database() as database_url:
        upgrade(database_url)
        env = {
            "database_url": database_url,
            "redis_url": redis_url,
            "webhook_secret": WEBHOOK_SECRET,
            # `?wait` is documented up to max_wait_s: short, so a wait on a job nobody runs ends fast.
            "max_wait_s": "2",
            "auth_enabled": "true",
        }
        with live_api(tmp_path / "api.log", **env) as api, finishing_jobs(database_url, redis_url):
            yield api, database_url


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(
    fuzzed_api: tuple[LiveApi, str], tmp_path: Path
) -> None:
    api, database_url = fuzzed_api
    # A key with every scope, so the run reaches every route (schemathesis' `ignored_auth` check also
    # sends requests without it and expects the 401 the document declares).
    key = make_key(database_url, "fuzz", scopes=tuple(Scope))
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{api.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        "all",
    ]
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=tmp_path,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"schemathesis failed (exit {run.returncode}):\n{report}\n{api.log()[-4000:]}"
    # The run really exercised the API: every phase ran and the stateful phase followed links.
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase}" in report, report
    assert "API Links:" in report, report
    assert "request.unhandled_error" not in api.log()
    # ... past authentication (it is on): jobs were created, and the finisher ended the generations.
    with session_scope(database_url) as session:
        statuses = set(session.scalars(select(Job.status)).all())
    # (classifier jobs have no worker here: they stay queued unless a cancel or an erase ended them)
    assert "succeeded" in statuses and statuses & {"queued", "canceled"}, statuses
