"""`textfleet batch`: submit a JSONL file of OpenAI requests as a batch, follow it, get its results.

Talks to the API over HTTP (`/v1/files`, `/v1/batches`) like any OpenAI client would.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.batches import FINAL_STATUSES

__all__ = ["BatchClient", "app"]

app = typer.Typer(
    help="OpenAI-compatible batches: submit a JSONL file, follow, cancel, download.", no_args_is_help=True
)
console = Console()

URL_OPTION = typer.Option(envvar="TEXTFLEET_URL", help="API base URL.")
DEFAULT_URL = "http://127.0.0.1:8000"


class BatchClient:
    """The few calls the commands make (httpx, with timeouts)."""

    def __init__(self, base_url: str, timeout: float = 120.0) -> None:
        key = os.environ.get("TEXTFLEET_API_KEY")  # the API key, as for every command that calls the API
        headers = {"Authorization": f"Bearer {key}"} if key else None
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)

    def __enter__(self) -> BatchClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            try:
                detail = response.json().get("error", {}).get("message", response.text)
            except ValueError:
                detail = response.text
            raise typer.BadParameter(f"HTTP {response.status_code}: {detail}")
        body: dict[str, Any] = response.json()
        return body

    def upload(self, path: Path) -> dict[str, Any]:
        with path.open("rb") as handle:
            return self._json(
                self._http.post("/v1/files", files={"file": (path.name, handle)}, data={"purpose": "batch"})
            )

    def create(
        self, file_id: str, endpoint: str, window: str, metadata: dict[str, str] | None
    ) -> dict[str, Any]:
        body = {
            "input_file_id": file_id,
            "endpoint": endpoint,
            "completion_window": window,
            "metadata": metadata,
        }
        return self._json(self._http.post("/v1/batches", json=body))

    def get(self, batch_id: str) -> dict[str, Any]:
        return self._json(self._http.get(f"/v1/batches/{batch_id}"))

    def list(self, limit: int) -> dict[str, Any]:
        return self._json(self._http.get("/v1/batches", params={"limit": limit}))

    def cancel(self, batch_id: str) -> dict[str, Any]:
        return self._json(self._http.post(f"/v1/batches/{batch_id}/cancel"))

    def download(self, file_id: str, target: Path) -> int:
        """Write the file's content to `target`; the number of lines written."""
        lines = 0
        with self._http.stream("GET", f"/v1/files/{file_id}/content") as response, target.open("wb") as out:
            if response.status_code >= 400:
                response.read()
                self._json(response)
            for chunk in response.iter_bytes():
                out.write(chunk)
                lines += chunk.count(b"\n")
        return lines


def _endpoint_of(path: Path) -> str:
    """The `url` of the file's first request (every line must name the same one)."""
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                try:
                    return str(json.loads(raw)["url"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise typer.BadParameter(f"the first line has no url: {exc}", param_hint="FILE") from exc
    raise typer.BadParameter("the file holds no request", param_hint="FILE")


def _parse_metadata(items: list[str]) -> dict[str, str] | None:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--metadata")
        pairs[key] = value
    return pairs or None


def _counts(batch: dict[str, Any]) -> str:
    counts = batch["request_counts"]
    return (
        f"{batch['status']}: {counts['completed']} completed, {counts['failed']} failed of {counts['total']}"
    )


def _print_errors(batch: dict[str, Any]) -> None:
    for error in (batch.get("errors") or {}).get("data", []):
        console.print(f"[red]{error['code']}[/red] {error['message']}")


def follow(client: BatchClient, batch: dict[str, Any], *, poll_s: float, timeout_s: float) -> dict[str, Any]:
    """Poll the batch until it is final, with a progress bar of its `request_counts`."""
    deadline = time.monotonic() + timeout_s
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(_counts(batch), total=batch["request_counts"]["total"] or None)
        while batch["status"] not in FINAL_STATUSES:
            if time.monotonic() > deadline:
                raise typer.BadParameter(
                    f"still {batch['status']} after {timeout_s:g} s", param_hint="--timeout"
                )
            time.sleep(poll_s)
            batch = client.get(batch["id"])
            counts = batch["request_counts"]
            progress.update(
                task, completed=counts["completed"] + counts["failed"], description=_counts(batch)
            )
    return batch


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL of requests.")],
    endpoint: Annotated[str | None, typer.Option(help="Default: the first line's url.")] = None,
    window: Annotated[str, typer.Option(help='Completion window ("24h").')] = "24h",
    metadata: Annotated[list[str] | None, typer.Option(help="KEY=VALUE (repeatable).")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the batch until it ends, with a progress bar.")] = False,
    output: Annotated[Path | None, typer.Option(help="With --wait: write the output file here.")] = None,
    poll: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after this many seconds.")] = 86_400.0,
    url: Annotated[str, URL_OPTION] = DEFAULT_URL,
) -> None:
    """Upload FILE and create a batch from it; print the batch id (and, with --wait, its outcome)."""
    with BatchClient(url) as client:
        uploaded = client.upload(file)
        batch = client.create(
            uploaded["id"], endpoint or _endpoint_of(file), window, _parse_metadata(metadata or [])
        )
        console.print(f"{batch['id']} ({_counts(batch)})")
        if batch["status"] == "failed":
            _print_errors(batch)
            raise typer.Exit(1)
        if wait:
            batch = follow(client, batch, poll_s=poll, timeout_s=timeout)
            console.print(f"{batch['id']} {_counts(batch)}")
            if output is not None and batch.get("output_file_id"):
                lines = client.download(batch["output_file_id"], output)
                console.print(f"{lines} result lines written to {output}")
            raise typer.Exit(0 if batch["status"] == "completed" else 1)


@app.command()
def get(batch_id: str, url: Annotated[str, URL_OPTION] = DEFAULT_URL) -> None:
    """Print a batch as JSON."""
    with BatchClient(url) as client:
        console.print_json(json.dumps(client.get(batch_id)))


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    url: Annotated[str, URL_OPTION] = DEFAULT_URL,
) -> None:
    """List batches, newest first."""
    table = Table("id", "status", "endpoint", "completed", "failed", "total", "created")
    with BatchClient(url) as client:
        for batch in client.list(limit)["data"]:
            counts = batch["request_counts"]
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(batch["created_at"]))
            table.add_row(
                batch["id"],
                batch["status"],
                batch["endpoint"],
                str(counts["completed"]),
                str(counts["failed"]),
                str(counts["total"]),
                created,
            )
    console.print(table)


@app.command()
def cancel(batch_id: str, url: Annotated[str, URL_OPTION] = DEFAULT_URL) -> None:
    """Cancel a batch: queued requests are canceled, running ones finish."""
    with BatchClient(url) as client:
        console.print(_counts(client.cancel(batch_id)))


@app.command()
def download(
    batch_id: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the JSONL.")],
    errors: Annotated[bool, typer.Option(help="The error file instead of the output file.")] = False,
    url: Annotated[str, URL_OPTION] = DEFAULT_URL,
) -> None:
    """Download a batch's output (or error) file; while it runs, what has finished so far."""
    with BatchClient(url) as client:
        batch = client.get(batch_id)
        file_id = batch.get("error_file_id" if errors else "output_file_id")
        if not file_id:
            raise typer.BadParameter(f"batch is {batch['status']} and has no such file")
        lines = client.download(file_id, output)
        console.print(f"{lines} lines written to {output} ({_counts(batch)})")


@app.command()
def bench(
    requests: Annotated[int, typer.Option(help="Moderation requests in each run.")] = 50_000,
    chunk: Annotated[
        int, typer.Option(help="Jobs per POST /v1/jobs/batch (the API's bulk_max_jobs).")
    ] = 10_000,
    timeout: Annotated[float, typer.Option(help="Give up on a run after this many seconds.")] = 3600.0,
    output: Annotated[Path | None, typer.Option(help="Also write the results here (JSON).")] = None,
    submit_only: Annotated[
        bool, typer.Option(help="Measure submission only (no workers needed; total and rate are then 0).")
    ] = False,
    url: Annotated[str, URL_OPTION] = DEFAULT_URL,
) -> None:
    """The same moderation work as one OpenAI batch and through POST /v1/jobs/batch, on an idle fleet:
    submission time and throughput of each."""
    from textfleet.batch_bench import run_batch, run_jobs

    with httpx.Client(base_url=url.rstrip("/"), timeout=600) as http:
        results = [
            run_batch(http, requests, timeout_s=timeout, wait=not submit_only),
            run_jobs(http, requests, chunk=chunk, timeout_s=timeout, wait=not submit_only),
        ]
    table = Table("path", "requests", "submission s", "total s", "requests/s")
    for result in results:
        table.add_row(
            result.path,
            str(result.requests),
            f"{result.submit_s:.2f}",
            f"{result.total_s:.1f}",
            f"{result.throughput:.1f}",
        )
    console.print(table)
    if output is not None:
        output.write_text(json.dumps([result.as_dict() for result in results], indent=2) + "\n")
