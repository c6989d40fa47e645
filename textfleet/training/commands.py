"""`textfleet train`, `textfleet eval` and `textfleet models list` (registered by `textfleet.cli`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.errors import TextfleetError
from shared.settings import get_settings

__all__ = ["register_commands"]

console = Console()
err_console = Console(stderr=True)

DEFAULT_DATA = Path("../shared/data")
DEFAULT_CACHE = Path("~/.cache/textfleet/embeddings")

DataOpt = Annotated[Path, typer.Option(help="The labelled data sets (see its README).")]
CacheOpt = Annotated[Path, typer.Option(help="Embedding cache (a second run embeds nothing).")]


@contextmanager
def _bars() -> Iterator[
    tuple[Callable[[str], None], Callable[[int, int], None], Callable[[int, int, str], None]]
]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console) as progress:
        embed = progress.add_task("embedding", total=None, visible=False)
        epochs = progress.add_task("training", total=None, visible=False)

        def say(message: str) -> None:
            progress.console.print(message)

        def on_embed(done: int, total: int) -> None:
            progress.update(embed, completed=done, total=total, visible=True)

        def on_epoch(epoch: int, total: int, note: str) -> None:
            progress.update(
                epochs, completed=epoch, total=total, visible=True, description=f"training ({note})"
            )

        yield say, on_embed, on_epoch


def _source(cache_dir: Path) -> Any:
    from textfleet.training.pipeline import FeatureSource

    settings = get_settings()
    return FeatureSource(settings.encoder_model_path, cache_dir.expanduser(), device=settings.classify_device)


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[red]error:[/] {exc}")
    return typer.Exit(2)


def train(
    file: Annotated[
        Path | None, typer.Argument(help="Labelled CSV/TSV/JSONL file (omit with --defaults).")
    ] = None,
    defaults: Annotated[bool, typer.Option(help="Rebuild the shipped default heads from --data.")] = False,
    name: Annotated[str | None, typer.Option(help="Register the model as models_dir/custom/NAME.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the model directory here instead.")] = None,
    labels: Annotated[str | None, typer.Option(help="Multi-label CSV: comma-separated 0/1 columns.")] = None,
    text_column: Annotated[str, typer.Option(help="Column/key of the text.")] = "text",
    label_column: Annotated[str, typer.Option(help="Column/key of a multi-class label.")] = "label",
    target_precision: Annotated[float, typer.Option(help="Per-label precision the thresholds aim at.")] = 0.8,
    epochs: Annotated[int, typer.Option(help="Most epochs (early stopping usually ends sooner).")] = 40,
    tasks: Annotated[
        str, typer.Option(help="--defaults: which default heads to train.")
    ] = "moderate,risk,sentiment",
    data: DataOpt = DEFAULT_DATA,
    cache_dir: CacheOpt = DEFAULT_CACHE,
) -> None:
    """Train a calibrated classifier head on the shared encoder (a labelled file, or the defaults)."""
    from textfleet.training.train import TrainConfig

    config = TrainConfig(target_precision=target_precision, epochs=epochs)
    source = _source(cache_dir)
    try:
        with _bars() as (say, on_embed, on_epoch):
            if defaults:
                from textfleet.training.defaults import DEFAULTS_DIR, train_defaults

                results = train_defaults(
                    data,
                    source,
                    tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()),
                    out_dir=out or DEFAULTS_DIR,
                    config=config,
                    say=say,
                    epoch_progress=on_epoch,
                    embed_progress=on_embed,
                )
                for task, metrics in results.items():
                    say(f"[green]ok[/] {task}: test {_headline(metrics['test'])}")
                return
            if file is None or (name is None and out is None):
                raise typer.BadParameter("give a FILE and --name (or --out), or --defaults")
            target = _train_file(
                file, name, out, labels, text_column, label_column, config, source, say, on_epoch, on_embed
            )
            say(f"[green]model written to {target}[/]")
    except (TextfleetError, ValueError) as exc:
        raise _fail(exc) from exc


def _train_file(
    file: Path,
    name: str | None,
    out: Path | None,
    labels: str | None,
    text_column: str,
    label_column: str,
    config: Any,
    source: Any,
    say: Callable[[str], None],
    on_epoch: Callable[[int, int, str], None],
    on_embed: Callable[[int, int], None],
) -> Path:
    import re

    from textfleet.training.cards import write_card
    from textfleet.training.pipeline import fit_and_measure
    from textfleet.training.userdata import read_labelled
    from workers.classifiers.heads import HeadSpec
    from workers.classifiers.registry import MODEL_NAME_PATTERN, custom_dir

    if name is not None and not re.fullmatch(MODEL_NAME_PATTERN, name):
        raise ValueError(f"--name {name!r} does not match {MODEL_NAME_PATTERN}")
    target = out or custom_dir(get_settings().models_dir) / str(name)
    wanted = tuple(x.strip() for x in labels.split(",") if x.strip()) if labels else ()
    labelled = read_labelled(file, text_column=text_column, label_column=label_column, labels=wanted)
    from textfleet.training.defaults import DEFAULT_FEATURES, DEFAULT_HIDDEN

    spec = HeadSpec(name or target.name, labelled.kind, labelled.labels, DEFAULT_HIDDEN, DEFAULT_FEATURES)  # type: ignore[arg-type]
    meta = {"name": name or target.name, "trained_on": [str(file)], "licenses": {"file": "your data"}}
    head, metrics = fit_and_measure(
        spec,
        labelled.examples,
        source,
        target,
        config=config,
        meta=meta,
        say=say,
        epoch_progress=on_epoch,
        embed_progress=on_embed,
    )
    write_card(target, head, metrics)
    say(f"test: {_headline(metrics['test'])}")
    return target


def _headline(m: dict[str, Any]) -> str:
    if "macro_f1" in m:
        return f"macro-F1 {m['macro_f1']}, accuracy {m['accuracy']} (n={m['n']})"
    return f"any-label AUPRC {m['any']['auprc']}, AUROC {m['any']['auroc']} (n={m['any']['n']})"


def evaluate(
    file: Annotated[
        Path | None, typer.Argument(help="Labelled CSV/TSV/JSONL file (omit with --defaults).")
    ] = None,
    defaults: Annotated[
        bool, typer.Option(help="All default heads on their test splits, vs alt-profanity-check.")
    ] = False,
    model: Annotated[
        str, typer.Option(help="A model directory, a custom model name or a default task.")
    ] = "moderate",
    out: Annotated[Path, typer.Option(help="Where eval.json, EVAL.md and eval.png go (--defaults).")] = Path(
        "eval-results"
    ),
    labels: Annotated[str | None, typer.Option(help="Multi-label CSV: comma-separated 0/1 columns.")] = None,
    data: DataOpt = DEFAULT_DATA,
    cache_dir: CacheOpt = DEFAULT_CACHE,
    heads_dir: Annotated[
        Path | None, typer.Option(help="Default heads to measure (default: the shipped ones).")
    ] = None,
) -> None:
    """AUPRC, AUROC, F1 at thresholds and calibration error of a model on labelled data."""
    from textfleet.training.evaluate import evaluate_defaults, evaluate_dir, markdown

    source = _source(cache_dir)
    try:
        if defaults:
            from textfleet.training.defaults import DEFAULTS_DIR

            report = evaluate_defaults(data, source, out, heads_dir=heads_dir or DEFAULTS_DIR)
            console.print(markdown(report))
            err_console.print(f"[green]written: {out}/eval.json, EVAL.md, eval.png[/]")
            return
        if file is None:
            raise typer.BadParameter("give a labelled FILE, or --defaults")
        from textfleet.training.userdata import read_labelled

        wanted = tuple(x.strip() for x in labels.split(",") if x.strip()) if labels else ()
        labelled = read_labelled(file, labels=wanted)
        figures = evaluate_dir(_model_dir(model), labelled.examples, source)
    except (TextfleetError, ValueError) as exc:
        raise _fail(exc) from exc
    _print_figures(figures)
    console.print_json(json.dumps(figures))


def _model_dir(model: str) -> Path:
    from workers.classifiers.registry import custom_dir

    settings = get_settings()
    for candidate in (
        Path(model),
        custom_dir(settings.models_dir) / model,
        Path(settings.heads_path) / model,
    ):
        if (candidate / "head.json").is_file():
            return candidate
    raise ValueError(f"no model {model!r} (a directory, a custom model name, or moderate/risk/sentiment)")


def _print_figures(figures: dict[str, Any]) -> None:
    table = Table("label", "n (pos)", "AUPRC", "AUROC", "F1", "ECE")
    rows = (
        figures["labels"].items()
        if "macro_f1" in figures
        else [("any", figures["any"]), *figures["labels"].items()]
    )
    for label, m in rows:
        table.add_row(
            label,
            f"{m['n']} ({m.get('positives', '')})",
            *(str(m.get(k)) for k in ("auprc", "auroc", "f1", "ece")),
        )
    console.print(table)
    if "macro_f1" in figures:
        console.print(f"macro-F1 {figures['macro_f1']}, accuracy {figures['accuracy']}")


def models_list() -> None:
    """The default heads and the custom models registered under the models directory."""
    from workers.classifiers.registry import list_models

    settings = get_settings()
    table = Table("name", "origin", "task", "kind", "labels", "encoder")
    for model in list_models(settings.models_dir, settings.heads_path):
        labels = ", ".join(model["labels"])
        table.add_row(
            model["name"],
            model["origin"],
            str(model["task"]),
            str(model["kind"]),
            labels,
            str(model["encoder"]),
        )
    console.print(table)


def register_commands(app: typer.Typer, models_app: typer.Typer) -> None:
    """Add train, eval and models list to the textfleet CLI."""
    app.command("train")(train)
    app.command("eval")(evaluate)
    models_app.command("list")(models_list)
