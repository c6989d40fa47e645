"""Chaos on a batch: the classify worker is killed (SIGKILL) and Redis restarts empty mid-batch; the
batch still completes, its output file holds exactly one line per `custom_id`, and no job finished
twice. Real parts only: the run's own Redis (no persistence), PostgreSQL, the API, classify workers."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.utils.batches import jsonl, moderation_lines
from tests.utils.fleets import running_fleet
from textfleet.chaos.run import RECOVERY_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REQUESTS = 2000
TIMEOUT_S = 600


def _until(oai: openai.OpenAI, batch_id: str, done: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        batch = oai.batches.retrieve(batch_id)
        if done(batch):
            return batch
        assert batch.status == "in_progress", batch
        assert time.monotonic() < deadline, f"batch still {batch.status}: {batch.request_counts}"
        time.sleep(0.25)


def _finished(batch: Any) -> int:
    counts = batch.request_counts
    return int(counts.completed + counts.failed)


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_a_batch_survives_a_worker_kill_and_a_redis_restart(database: str, tmp_path: Path) -> None:
    env = {**RECOVERY_ENV, "TEXTFLEET_LOG_FORMAT": "json", "TEXTFLEET_CLASSIFY_CONCURRENCY": "16"}
    with running_fleet(database, tmp_path, env=env, workers=("classify",)) as fleet:
        with openai.OpenAI(
            base_url=f"{fleet.api_url}/v1", api_key="textfleet", timeout=120, max_retries=3
        ) as oai:
            uploaded = oai.files.create(
                file=("in.jsonl", io.BytesIO(jsonl(moderation_lines(REQUESTS)))), purpose="batch"
            )
            batch = oai.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/moderations", completion_window="24h"
            )

            _until(oai, batch.id, lambda b: _finished(b) >= REQUESTS // 10)
            fleet.kill9("worker-classify")  # mid-batch: its reserved and running jobs are orphaned
            _until(oai, batch.id, lambda b: _finished(b) >= REQUESTS // 3)
            fleet.restart_redis()  # every queued message, the outstanding sets and locks are gone
            done = _until(oai, batch.id, lambda b: b.status != "in_progress")

            assert done.status == "completed", done
            assert (done.request_counts.completed, done.request_counts.failed) == (REQUESTS, 0)
            assert done.output_file_id is not None and done.error_file_id is not None
            output = [json.loads(line) for line in oai.files.content(done.output_file_id).text.splitlines()]
            errors = oai.files.content(done.error_file_id).text
        custom_ids = [line["custom_id"] for line in output]
        assert len(custom_ids) == REQUESTS
        assert set(custom_ids) == {f"req-{i}" for i in range(REQUESTS)}  # exactly one line each
        assert errors == ""
        finished = fleet.finished_events()
        job_ids = {line["response"]["request_id"] for line in output}
        # One winning terminal write per job. A worker killed with -9 between its commit and its log line
        # leaves a job with no `job.finished` line (its state is in the database: the output has it), so
        # "never" is read from the output above, and "twice" from the logs.
        assert max(finished.get(job_id, 0) for job_id in job_ids) == 1, "a job finished twice"
        assert sum(finished.get(job_id, 0) for job_id in job_ids) >= REQUESTS // 2  # the logs were read
