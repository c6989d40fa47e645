"""The `textfleet` command line.

textfleet models prepare        build the default models (cached)
textfleet db upgrade            migrate the database
textfleet api                   serve the HTTP API
textfleet worker --queues ...   run a worker (loads its model once)
textfleet submit TASK --input JSON [--params JSON] [--wait]
textfleet get ID [--wait N]
textfleet webhooks resend ID [EVENT]   re-send a failed webhook delivery (of a job or a batch)
textfleet keys create|list|revoke      API keys, straight in the database
textfleet dev                   everything on one machine, in one terminal
textfleet demo                  start the stack, run one job of every task, print the results
"""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.constants import Queue, TaskName
from shared.settings import get_settings
from textfleet.batch_cli import app as batch_app
from textfleet.chaos.cli import chaos as chaos_command
from textfleet.keys_cli import app as keys_app
from textfleet.tenant_webhooks_cli import webhook_secret as webhook_secret_command
from textfleet.tenants_cli import app as tenants_app

__all__ = ["app", "main"]

app = typer.Typer(help="textfleet: a message-driven NLP worker fleet.", no_args_is_help=True)
models_app = typer.Typer(help="Model preparation.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.add_typer(batch_app, name="batch")
app.add_typer(keys_app, name="keys")
app.add_typer(tenants_app, name="tenants")
app.command("chaos")(chaos_command)
# `textfleet bench` wherever the `bench` package is installed (a checkout); the images leave it out.
if importlib.util.find_spec("bench") is not None:
    from bench.cli import bench as bench_command

    app.command("bench")(bench_command)

console = Console()
err_console = Console(stderr=True)

DEFAULT_URL = "http://127.0.0.1:8000"

DEMO_JOBS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "generate",
        {"messages": [{"role": "user", "content": "Write one sentence about the sea."}]},
        {"max_tokens": 48, "temperature": 0.0},
    ),
    (
        "summarize",
        {
            "text": "The city council met on Tuesday to discuss the new bicycle lanes. After two hours of "
            "debate, members voted seven to two to build protected lanes on Main Street next spring. "
            "Shop owners worried about parking, but the council promised a new car park nearby."
        },
        {"max_tokens": 64},
    ),
    ("moderate", {"text": "I will find you and hurt you, you worthless idiot."}, {}),
    (
        "risk",
        {"text": "URGENT: your account is locked. Send your bank PIN to claim the $5,000 refund now!"},
        {},
    ),
    ("sentiment", {"text": "The support team was fantastic and fixed my problem in minutes."}, {}),
    ("entities", {"text": "Tim Cook met Angela Merkel in Berlin on March 5, 2024; press@apple.com"}, {}),
    (
        "extract",
        {"text": "Tim Cook, the chief executive of Apple, opened a new office in Munich in May 2024."},
        {},
    ),
]


def _rounded(value: Any) -> Any:
    """`value` with floats rounded to 3 places, for display."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _parse_json(value: str | None, name: str) -> dict[str, Any]:
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint=name) from exc
    if not isinstance(parsed, dict):
        raise typer.BadParameter("must be a JSON object", param_hint=name)
    return parsed


def _parse_queues(value: str) -> tuple[Queue, ...]:
    names = [q.strip() for q in value.split(",") if q.strip()]
    try:
        return tuple(Queue(name) for name in names)
    except ValueError as exc:
        valid = ", ".join(q.value for q in Queue)
        raise typer.BadParameter(f"{exc}; valid queues: {valid}", param_hint="--queues") from exc


@models_app.command("prepare")
def models_prepare() -> None:
    """Build the default models into TEXTFLEET_MODELS_DIR (a second run is instant)."""
    from textfleet.models.heads import prepare_heads
    from textfleet.models.prepare import prepare_encoder, prepare_generation_model

    settings = get_settings()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console
    ) as progress:
        steps = [
            ("generation model (SmolLM2-135M-Instruct, GGUF -> safetensors)", "gen"),
            ("classifier encoder (all-MiniLM-L6-v2)", "enc"),
            ("classifier heads (moderation, risk, sentiment; shipped, trained on real data)", "heads"),
        ]
        bar = progress.add_task("models", total=len(steps))
        for description, step in steps:
            progress.update(bar, description=description)

            def note(message: str, _d: str = description) -> None:
                progress.update(bar, description=f"{_d}: {message}")

            if step == "gen":
                path = prepare_generation_model(settings.models_dir, progress=note)
            elif step == "enc":
                path = prepare_encoder(settings.models_dir, progress=note)
            else:
                path = prepare_heads(settings.heads_path, progress=note)
            progress.advance(bar)
            progress.console.print(f"[green]ok[/] {description}: {path}")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate TEXTFLEET_DATABASE_URL to the latest schema."""
    from shared.db.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url, revision)
    err_console.print(f"[green]database at {revision}[/]")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address (default TEXTFLEET_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default TEXTFLEET_API_PORT).")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (uvicorn)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "api.app:app",
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        log_config=None,
        access_log=False,
    )


@app.command()
def worker(
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues: generate, classify.")
    ] = "generate,classify",
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs held at once (default: from settings).")
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option(
            help="One supervised worker process per GPU: `0,1,...` or `all` (sets CUDA_VISIBLE_DEVICES)."
        ),
    ] = None,
    instant_classifiers: Annotated[
        bool,
        typer.Option(
            help="Benchmark only: the classify queue is served without a model, every answer fixed and "
            "instant (measures the fleet's own cost per job; refused in production)."
        ),
    ] = False,
) -> None:
    """Run a worker: load models once, then consume the queues with the threads pool."""
    settings = get_settings()
    parsed = _parse_queues(queues)
    if gpus:
        from shared.logging import configure_logging
        from textfleet.supervisor import GPUSpecError, parse_gpus, supervise

        try:
            gpu_list = parse_gpus(gpus)
        except GPUSpecError as exc:
            raise typer.BadParameter(str(exc), param_hint="--gpus") from exc
        configure_logging(settings, process="supervisor")
        child = [sys.executable, "-m", "textfleet", "worker", "--queues", ",".join(q.value for q in parsed)]
        if concurrency:
            child += ["--concurrency", str(concurrency)]
        if instant_classifiers:
            child.append("--instant-classifiers")
        raise typer.Exit(supervise(lambda _gpu: child, gpu_list, drain_s=settings.worker_drain_s))

    from workers.worker import run_worker

    run_worker(settings, parsed, concurrency, instant_classifiers=instant_classifiers)


@app.command()
def submit(
    task: Annotated[str, typer.Argument(help=f"One of: {', '.join(t.value for t in TaskName)}.")],
    input_: Annotated[str, typer.Option("--input", help='Input JSON, e.g. \'{"text": "hi"}\'.')],
    params: Annotated[str | None, typer.Option(help="Params JSON.")] = None,
    metadata: Annotated[str | None, typer.Option(help="Metadata JSON.")] = None,
    priority: Annotated[int | None, typer.Option(help="0 (lowest) to 9 (highest).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the result.")] = False,
    url: Annotated[str, typer.Option(envvar="TEXTFLEET_URL", help="API base URL.")] = DEFAULT_URL,
) -> None:
    """Submit a job and print it (with --wait: its final state)."""
    from textfleet.client import ApiError, TextfleetClient

    with TextfleetClient(url) as client:
        try:
            job = client.submit(
                task,
                _parse_json(input_, "--input"),
                _parse_json(params, "--params"),
                _parse_json(metadata, "--metadata"),
                priority,
            )
            if wait:
                job = client.wait(job["id"])
        except ApiError as exc:
            err_console.print_json(data=exc.body)
            raise typer.Exit(1) from exc
    console.print_json(data=job)


@app.command()
def get(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    wait: Annotated[float | None, typer.Option(help="Hold up to N seconds for a terminal state.")] = None,
    url: Annotated[str, typer.Option(envvar="TEXTFLEET_URL", help="API base URL.")] = DEFAULT_URL,
) -> None:
    """Print a job."""
    from textfleet.client import ApiError, TextfleetClient

    with TextfleetClient(url) as client:
        try:
            job = client.get(job_id, wait=wait)
        except ApiError as exc:
            err_console.print_json(data=exc.body)
            raise typer.Exit(1) from exc
    console.print_json(data=job)


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="API bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues to run a worker for.")
    ] = "generate,classify,webhooks",
    auth: Annotated[
        bool, typer.Option("--auth/--open", help="Enforce API keys (default: open, for local use only).")
    ] = False,
) -> None:
    """Run the whole fleet on this machine (embedded Redis and SQLite unless configured).

    Open by default (no API keys checked; it says so at start); `--auth` enforces keys."""
    from shared.logging import configure_logging
    from textfleet.dev import DevStack, stop_on_signals

    settings = get_settings()
    configure_logging(settings, process="dev")
    stopping = stop_on_signals()
    try:
        with DevStack(
            settings, host=host, port=port, queues=_parse_queues(queues), console=err_console, auth=auth
        ) as stack:
            mode = "API keys enforced" if auth else "OPEN: no API keys checked"
            console.print(
                f"textfleet is ready: {stack.url}  ({mode}; API docs: {stack.url}/docs; Ctrl-C stops)"
            )
            stack.supervise(stopping.is_set)
            err_console.print("stopping ...")
    except KeyboardInterrupt:
        err_console.print("stopped")


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="API port for the demo stack (0: any free port).")] = 0,
) -> None:
    """Start the stack, submit one job of every task over HTTP, print the results, stop."""
    from shared.logging import configure_logging
    from textfleet.client import TextfleetClient
    from textfleet.dev import DevStack, free_port

    settings = get_settings()
    configure_logging(settings, process="demo")
    with DevStack(settings, port=port or free_port(), console=err_console) as stack:
        console.print(f"[bold]stack ready at {stack.url}[/]")
        with TextfleetClient(stack.url) as client:
            submitted = [client.submit(t, i, p) for t, i, p in DEMO_JOBS]
            results = [client.wait(job["id"], timeout=300) for job in submitted]
    table = Table(title="textfleet demo: one job of every task", show_lines=True)
    for column in ("task", "status", "input", "result"):
        table.add_column(column, overflow="fold")
    for (task, input_, _params), job in zip(DEMO_JOBS, results, strict=True):
        shown = _rounded(job["result"] if job["status"] == "succeeded" else job["error"])
        table.add_row(task, job["status"], json.dumps(input_)[:120], json.dumps(shown, indent=1))
    console.print(table)
    if any(job["status"] != "succeeded" for job in results):
        raise typer.Exit(1)


# --- webhooks (issue 17) ---------------------------------------------------------------------------

webhooks_app = typer.Typer(help="Webhook deliveries.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("resend")
def webhooks_resend(
    job_id: Annotated[str, typer.Argument(help="Job id, or a batch id (batch_...): its one event.")],
    event: Annotated[str, typer.Argument(help="started or completed (a job's).")] = "completed",
    url: Annotated[str, typer.Option(envvar="TEXTFLEET_URL", help="API base URL.")] = DEFAULT_URL,
) -> None:
    """Re-send a failed webhook delivery (same webhook-id, fresh retry schedule)."""
    from textfleet.client import ApiError, TextfleetClient

    with TextfleetClient(url) as client:
        try:
            if job_id.startswith("batch_"):
                delivery = client.resend_batch_webhook(job_id)
            else:
                delivery = client.resend_webhook(job_id, event)
        except ApiError as exc:
            err_console.print_json(data=exc.body)
            raise typer.Exit(1) from exc
    console.print_json(data=delivery)


# --- tenants: one group (`textfleet.tenants_cli`: limits); a tenant's webhook signing secret too ---
tenants_app.command("webhook-secret")(webhook_secret_command)


# --- Classifier training and evaluation (issue 11) ---------------------------------------------
# textfleet train FILE --name NAME | --defaults; textfleet eval FILE --model M | --defaults;
# textfleet models list
from textfleet.training.commands import register_commands  # noqa: E402

register_commands(app, models_app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # vLLM's engine process re-imports the main module: keep this guard
    main()
