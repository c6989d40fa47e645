"""`textfleet webhooks resend` against a real API server (uvicorn on a free port)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from api.app import create_app
from shared.db import session_scope
from shared.db.models import WebhookDelivery
from shared.settings import get_settings
from shared.webhooks import record_batch_event, record_event
from tests.utils.batches import batch_rows
from tests.utils.factories import add_jobs, webhook_job_row
from textfleet.cli import app as cli
from textfleet.dev import free_port


@pytest.fixture
def api_url(settings_env: None) -> Iterator[str]:
    get_settings.cache_clear()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_resend_prints_the_pending_delivery_and_fails_clearly_on_refusal(
    api_url: str, database_url: str
) -> None:
    job = webhook_job_row("https://hooks.example.com/x", ["completed"])
    job.status = "succeeded"
    with session_scope(database_url) as session:
        add_jobs(session, [job])
        row = record_event(session, job, "completed")
        assert row is not None
        row.status, row.last_error = "failed", "HTTP 500"
    runner = CliRunner()

    result = runner.invoke(cli, ["webhooks", "resend", job.id, "completed", "--url", api_url])

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["id"], shown["status"], shown["attempts"]) == (row.id, "pending", 0)
    with session_scope(database_url) as session:
        stored = session.get(WebhookDelivery, row.id)
        assert stored is not None and stored.status == "pending"

    again = runner.invoke(cli, ["webhooks", "resend", job.id, "--url", api_url])
    assert again.exit_code == 1
    assert "only a failed delivery can be re-sent" in again.output


def test_resend_takes_a_batch_id(api_url: str, database_url: str) -> None:
    batch_id = batch_rows(database_url, 1, expires_in_s=-1, webhook="https://hooks.example.com/b")
    with session_scope(database_url) as session:
        row = record_batch_event(session, batch_id, "https://hooks.example.com/b", "expired")
        assert row is not None
        row.status, row.last_error = "failed", "HTTP 500"
    runner = CliRunner()

    result = runner.invoke(cli, ["webhooks", "resend", batch_id, "--url", api_url])

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["id"], shown["event"], shown["status"]) == (row.id, "expired", "pending")
    missing = runner.invoke(cli, ["webhooks", "resend", "batch_nope", "--url", api_url])
    assert missing.exit_code == 1 and "batch_nope" in missing.output
