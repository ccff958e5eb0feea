"""The `insight` command line (Typer + Rich)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.config import Settings

app = typer.Typer(help="Product Insight Agent: find where users struggle and what to fix first.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

DbOption = Annotated[Optional[Path], typer.Option("--db", help="analytics DuckDB file (default: INSIGHT_DB)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def fail(message: str) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(2)


@contextmanager
def progress_bar(description: str) -> Iterator:
    """A spinner with elapsed time; yields a callback that updates its text."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task(description)
        yield lambda text: bar.update(task, description=f"{description}: {text}")


def resolve_db(db: Path | None) -> Path:
    return db or Settings().db


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="DuckDB file to write")],
    scenario: Annotated[str, typer.Option(help="demo, null, another shipped name, or a YAML file")] = "demo",
    users: Annotated[Optional[int], typer.Option(min=1, help="population size (default: the scenario's)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed (default: the scenario's)")] = None,
    effect_scale: Annotated[float, typer.Option(min=0.01, max=1.0, help="scale every planted effect")] = 1.0,
) -> None:
    """Generate a synthetic dataset with planted frictions and its ground truth."""
    from data.generate import generate as run, ground_truth_path
    from data.scenario import load_scenario

    try:
        sc = load_scenario(scenario)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc))
    update = {k: v for k, v in {"users": users, "seed": seed}.items() if v is not None}
    sc = sc.model_copy(update=update).scaled(effect_scale)
    with progress_bar(f"generating {sc.name}") as step:
        truth = run(sc, out, progress=step)
    console.print(f"wrote {out} ({truth['events']:,} events, {sc.users:,} users, "
                  f"{len(truth['frictions'])} planted frictions) and {ground_truth_path(out)}")


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="folder of users.*, events.* ... or a Segment JSONL file")],
    db: DbOption = None,
    format: Annotated[str, typer.Option("--format", help="auto, tables or segment")] = "auto",
) -> None:
    """Import CSV / Parquet / JSONL tables or Segment track JSONL; all-or-nothing."""
    from data.importers import ImportFailed, import_source

    if format not in {"auto", "tables", "segment"}:
        raise fail(f"--format must be auto, tables or segment, not {format!r}")
    target = resolve_db(db)
    try:
        with progress_bar(f"importing {source}") as step:
            counts = import_source(source, target, format=format, progress=step)
    except ImportFailed as exc:
        raise fail(f"{exc} (nothing was written to {target})")
    console.print(f"imported into {target}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))


@app.command()
def demo(db: DbOption = None) -> None:
    """Build the demo dataset on first use, then print what to fix first."""
    from data.generate import generate as run
    from data.scenario import load_scenario

    target = resolve_db(db)
    if not target.exists():
        with progress_bar("building the demo dataset (first run only)") as step:
            run(load_scenario("demo"), target, progress=step)
    from tools.summary import dataset_summary

    summary = dataset_summary(target)
    console.print(f"[bold]Demo dataset[/] {target}")
    table = Table("table", "rows")
    for name, n in summary["rows"].items():
        table.add_row(name, f"{n:,}")
    console.print(table)
    console.print(f"period {summary['period'][0]} .. {summary['period'][1]}; "
                  f"purchase conversion {summary['conversion']:.1%}; "
                  f"cart abandonment {summary['cart_abandonment']:.1%}; "
                  f"zero-result searches {summary['zero_result_rate']:.1%}")


if __name__ == "__main__":
    app()
