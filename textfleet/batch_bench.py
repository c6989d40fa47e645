"""`textfleet batch bench`: the same moderation work submitted as an OpenAI batch and through
`POST /v1/jobs/batch`, against a running fleet; submission time and throughput of each.

- batch: upload the JSONL (`/v1/files`), create the batch; submission = upload + create; done when the
  batch is `completed`; throughput = requests / (done - start of submission).
- jobs: `POST /v1/jobs/batch` in chunks of `--chunk` (the API's `bulk_max_jobs`); done when the
  classify queue has nothing outstanding (`GET /v1/queues/classify`).
Run it on an otherwise idle fleet: anything else on the classify queue counts as this work.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["BenchResult", "run_batch", "run_jobs"]

console = Console()
_COLUMNS = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


@dataclass(frozen=True)
class BenchResult:
    path: str
    requests: int
    submit_s: float
    total_s: float

    @property
    def throughput(self) -> float:
        return self.requests / self.total_s if self.total_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "throughput_per_s": round(self.throughput, 1)}


def texts(count: int) -> list[str]:
    """Distinct, varied texts (so no result can come from a cache)."""
    subjects = ["The weather", "This movie", "Your argument", "The new policy", "That team", "My neighbour"]
    verdicts = ["is great", "is awful", "makes me angry", "is fine I guess", "is a disgrace", "made my day"]
    return [f"{subjects[i % 6]} {verdicts[(i // 6) % 6]} (sample {i})." for i in range(count)]


def run_batch(
    http: httpx.Client, count: int, *, timeout_s: float, poll_s: float = 1.0, wait: bool = True
) -> BenchResult:
    lines = "".join(
        json.dumps(
            {"custom_id": f"r{i}", "method": "POST", "url": "/v1/moderations", "body": {"input": text}}
        )
        + "\n"
        for i, text in enumerate(texts(count))
    ).encode()
    started = time.perf_counter()
    uploaded = http.post("/v1/files", files={"file": ("bench.jsonl", lines)}, data={"purpose": "batch"})
    uploaded.raise_for_status()
    created = http.post(
        "/v1/batches",
        json={
            "input_file_id": uploaded.json()["id"],
            "endpoint": "/v1/moderations",
            "completion_window": "24h",
        },
    )
    created.raise_for_status()
    batch = created.json()
    if batch["status"] != "in_progress":
        raise RuntimeError(f"batch {batch['status']}: {batch.get('errors')}")
    submitted = time.perf_counter()
    if not wait:
        return BenchResult("openai batch", count, submitted - started, 0.0)
    deadline = started + timeout_s
    with Progress(*_COLUMNS, console=console) as progress:
        task = progress.add_task("batch", total=count)
        while batch["status"] != "completed":
            if time.perf_counter() > deadline or batch["status"] in {"failed", "expired", "cancelled"}:
                raise RuntimeError(f"batch {batch['status']} after {time.perf_counter() - started:.0f} s")
            time.sleep(poll_s)
            batch = http.get(f"/v1/batches/{batch['id']}").json()
            counts = batch["request_counts"]
            progress.update(task, completed=counts["completed"] + counts["failed"])
    done = time.perf_counter()
    output = http.get(f"/v1/files/{batch['output_file_id']}/content")
    ids = {json.loads(line)["custom_id"] for line in output.text.splitlines()}
    if ids != {f"r{i}" for i in range(count)} or len(output.text.splitlines()) != count:
        raise RuntimeError(f"the output file holds {len(ids)} distinct custom_ids of {count}")
    return BenchResult("openai batch", count, submitted - started, done - started)


def _outstanding(http: httpx.Client) -> int:
    return int(http.get("/v1/queues/classify").json()["outstanding"])


def run_jobs(
    http: httpx.Client, count: int, *, chunk: int, timeout_s: float, poll_s: float = 1.0, wait: bool = True
) -> BenchResult:
    jobs = [{"task": "moderate", "input": {"text": text}} for text in texts(count)]
    started = time.perf_counter()
    for start in range(0, count, chunk):
        http.post("/v1/jobs/batch", json={"jobs": jobs[start : start + chunk]}).raise_for_status()
    submitted = time.perf_counter()
    if not wait:
        return BenchResult("POST /v1/jobs/batch", count, submitted - started, 0.0)
    deadline = started + timeout_s
    with Progress(*_COLUMNS, console=console) as progress:
        task = progress.add_task("POST /v1/jobs/batch", total=count)
        while (left := _outstanding(http)) > 0:
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"{left} jobs still outstanding after {time.perf_counter() - started:.0f} s"
                )
            progress.update(task, completed=count - left)
            time.sleep(poll_s)
    return BenchResult("POST /v1/jobs/batch", count, submitted - started, time.perf_counter() - started)
