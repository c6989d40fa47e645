"""`textfleet batch` against the API served for real (HTTP) on real Redis and databases; the workers'
part is played by writing the jobs' terminal states."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from shared.db.batch_models import Batch
from shared.db.session import session_scope
from tests.utils.batches import batch_job_ids, batch_line, finish_batch_jobs, jsonl, moderation_lines
from tests.utils.live_api import LiveApi, live_api
from textfleet.batch_cli import app

RESULT = {"flagged": False, "categories": {"hate": False}, "category_scores": {"hate": 0.01}}
runner = CliRunner()


@pytest.fixture
def served(settings_env: None, tmp_path: Path) -> Iterator[LiveApi]:
    with live_api(tmp_path / "api.log") as api:
        yield api


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _batch_id(output: str) -> str:
    found = re.search(r"batch_[0-9A-Z]{26}", output)
    assert found is not None, output
    return found.group(0)


def _batch_ids(database_url: str) -> set[str]:
    with session_scope(database_url) as session:
        return set(session.scalars(select(Batch.id)))


def test_submit_wait_shows_progress_and_writes_the_output(
    served: LiveApi, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(jsonl(moderation_lines(5)))
    out = tmp_path / "out.jsonl"

    before = _batch_ids(database_url)

    def worker() -> None:  # finish the new batch's jobs once it exists
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch_id = next(iter(_batch_ids(database_url) - before), None)
            if batch_id is not None:
                finish_batch_jobs(
                    database_url, list(batch_job_ids(database_url, batch_id).values()), result=RESULT
                )
                return
            time.sleep(0.2)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        code, output = _run(
            "submit",
            str(source),
            "--wait",
            "--poll",
            "0.2",
            "--timeout",
            "60",
            "--output",
            str(out),
            "--url",
            served.url,
        )
    finally:
        thread.join(timeout=70)
    assert code == 0, output
    assert "completed: 5 completed, 0 failed of 5" in output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["custom_id"] for line in lines) == [f"req-{i}" for i in range(5)]

    batch_id = _batch_id(output)
    code, shown = _run("get", batch_id, "--url", served.url)
    assert code == 0, shown
    assert json.loads(shown)["status"] == "completed"
    errors = tmp_path / "errors.jsonl"
    code, output = _run("download", batch_id, "--errors", "-o", str(errors), "--url", served.url)
    assert code == 0, output
    assert errors.read_text() == ""


def test_cancel_and_download_partial(served: LiveApi, database_url: str, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(jsonl(moderation_lines(4)))
    code, output = _run("submit", str(source), "--metadata", "who=cli", "--url", served.url)
    assert code == 0, output
    batch_id = _batch_id(output)
    ids = batch_job_ids(database_url, batch_id)
    finish_batch_jobs(database_url, [ids["req-0"]], result=RESULT)
    partial = tmp_path / "partial.jsonl"
    code, output = _run("download", batch_id, "-o", str(partial), "--url", served.url)
    assert code == 0, output
    assert [json.loads(line)["custom_id"] for line in partial.read_text().splitlines()] == ["req-0"]
    code, output = _run("cancel", batch_id, "--url", served.url)
    assert code == 0
    assert "cancelled: 1 completed, 3 failed of 4" in output


def test_a_bad_file_names_its_lines(served: LiveApi, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_bytes(jsonl([*moderation_lines(1), batch_line("x", "/v1/moderations", {"inputs": "typo"})]))
    code, output = _run("submit", str(source), "--url", served.url)
    assert code == 1
    assert "failed" in output
    assert "line 2: body.input: Field required" in output


def test_bench_submission_of_both_paths(served: LiveApi, database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    before = _batch_ids(database_url)
    code, output = _run(
        "bench",
        "--requests",
        "300",
        "--chunk",
        "100",
        "--submit-only",
        "--output",
        str(out),
        "--url",
        served.url,
    )
    assert code == 0, output
    results = json.loads(out.read_text())
    assert [(r["path"], r["requests"]) for r in results] == [
        ("openai batch", 300),
        ("POST /v1/jobs/batch", 300),
    ]
    assert all(r["submit_s"] > 0 for r in results)
    [batch_id] = _batch_ids(database_url) - before
    assert len(batch_job_ids(database_url, batch_id)) == 300
