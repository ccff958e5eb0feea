"""The `insight` command line (Typer + Rich)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from agent.config import Settings


app = typer.Typer(help="Product Insight Agent: find where users struggle and what to fix first.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # every control character but tab and newline


def plain(text: object) -> str:
    """`text` with control characters (escape sequences, carriage returns, bells) removed."""
    return CONTROL.sub("", str(text))


class PlainConsole(Console):
    """A console that prints strings as text: data never becomes Rich markup, an emoji, a hyperlink or an escape
    sequence. Style whole lines with `style=`."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(plain(text), **{**kwargs, "markup": False, "emoji": False, "highlight": False})


console = PlainConsole(soft_wrap=True)
err_console = PlainConsole(stderr=True, soft_wrap=True)

DbOption = Annotated[Path | None, typer.Option(
    "--db", help="analytics DuckDB file or Parquet lake directory (default: INSIGHT_DB)")]
EngineOption = Annotated[str | None, typer.Option(
    "--engine", help="duckdb | spark (spark reads a Parquet lake; default: INSIGHT_ENGINE or duckdb)")]
RemoteOption = Annotated[str | None, typer.Option(
    "--spark-remote", help="Spark Connect URL, e.g. sc://spark-host:15002 (default: INSIGHT_SPARK_REMOTE)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
MapOption = Annotated[Path | None, typer.Option(
    "--map", help="event map YAML to read the data with (default: the one stored with the data; see `insight map`)")]


class Failed(typer.Exit):
    """Exit code 2, carrying its one-line message (a scheduled run logs it)."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def fail(message: str) -> Failed:
    """Print a one-line error and return the exit to raise."""
    err_console.print(f"error: {message}", style="bold red")
    return Failed(message)


@contextmanager
def progress_bar(description: str) -> Iterator:
    """A spinner with elapsed time on a terminal (nothing on a pipe); yields a callback that updates its text."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if not err_console.is_terminal:
        yield lambda text: None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task(description)
        yield lambda text: bar.update(task, description=f"{description}: {text}")


def load_settings() -> Settings:
    """INSIGHT_* settings (imported here: pydantic-settings is a fifth of the start-up)."""
    from agent.config import Settings

    return Settings()


def resolve_db(db: Path | None) -> Path:
    return db or load_settings().db


def engine_settings(engine: str | None = None, spark_remote: str | None = None, event_map: Path | None = None
                    ) -> Settings:
    """Settings with the command line's engine and map choices over INSIGHT_* ones; a bad engine ends the command."""
    from tools.engines import ENGINES

    settings = load_settings()
    if engine is not None and engine not in ENGINES:
        raise fail(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
    overrides = {k: v for k, v in {"engine": engine, "spark_remote": spark_remote, "map": event_map}.items()
                 if v is not None}
    return settings.model_copy(update=overrides) if overrides else settings


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="DuckDB file to write")],
    scenario: Annotated[str, typer.Option(help="demo, null, another shipped name, or a YAML file")] = "demo",
    users: Annotated[int | None, typer.Option(min=1, help="population size (default: the scenario's)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (default: the scenario's)")] = None,
    effect_scale: Annotated[float, typer.Option(min=0.01, max=1.0, help="scale every planted effect")] = 1.0,
) -> None:
    """Generate a synthetic dataset with planted frictions and its ground truth."""
    from data.generate import generate as run
    from data.generate import ground_truth_path
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
    source: Annotated[Path, typer.Argument(help="an export file or folder: tables, Segment, a wide events file "
                                                "(CSV/Parquet/JSONL), Amplitude, Mixpanel, PostHog or GA4")],
    db: DbOption = None,
    format: Annotated[str, typer.Option("--format", help="auto, tables, segment, events, amplitude, mixpanel, "
                                                         "posthog or ga4")] = "auto",
    columns: Annotated[str | None, typer.Option(
        "--columns", help="name the core columns of a wide events file: ts=created,user_id=uid,event=action")] = None,
    ts_format: Annotated[str | None, typer.Option(
        "--ts-format", help="strptime format of text timestamps, e.g. '%d-%m-%Y %H:%M' (default: recognized)")] = None,
    event_map: MapOption = None,
) -> None:
    """Import an export all-or-nothing, and store its event map (inferred, or --map FILE) with the data."""
    from data.importers import ImportFailed, import_source
    from tools.semantic.eventmap import MapError, load_map
    from tools.semantic.store import finish_import

    target = resolve_db(db)
    try:
        given = load_map(event_map) if event_map else None
        with progress_bar(f"importing {source}") as step:
            counts = import_source(source, target, format=format, columns=columns, ts_format=ts_format,
                                   progress=step, finish=finish_import(given))
    except (ImportFailed, MapError) as exc:
        raise fail(f"{exc} (nothing was written to {target})")
    console.print(f"imported into {target}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    with open_warehouse(target) as wh:
        emap = wh.event_map
    console.print(f"event map: funnel {' -> '.join(emap.steps) or 'none'}; {len(emap.dims)} dimensions"
                  + ("" if given else " (inferred: `insight map` shows how, `insight map --write FILE` to edit)"))
    for analysis, need in emap.unavailable().items():
        console.print(f"no {need}: {analysis} disabled", style="yellow")


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="lake directory to write (events partitioned by day)")],
    db: DbOption = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing lake directory")] = False,
) -> None:
    """Export a DuckDB file to a Parquet lake that DuckDB and Spark read in place (--db DIR)."""
    from data.export import ExportError, export_lake

    try:
        with progress_bar(f"exporting to {out}"):
            counts = export_lake(resolve_db(db), out, overwrite=overwrite)
    except ExportError as exc:
        raise fail(str(exc))
    console.print(f"exported to {out}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))


def open_warehouse(db: Path | None, engine: str | None = None, spark_remote: str | None = None,
                   event_map: Path | None = None):
    """The read-only warehouse of `db` (or INSIGHT_DB) on the chosen engine, read with `event_map` when given,
    or a clean exit naming the problem."""
    from tools.semantic.eventmap import MapError
    from tools.warehouse import WarehouseError

    try:
        wh = engine_settings(engine, spark_remote, event_map).open_warehouse(resolve_db(db))
    except (WarehouseError, MapError) as exc:
        raise fail(str(exc))
    try:
        _ = wh.event_map  # a stored map that no longer reads, or inference that fails, ends here with its reason
    except (MapError, WarehouseError) as exc:
        wh.close()
        raise fail(str(exc))
    return wh


def run_scan(db: Path | None, period: str, engine: str | None = None, spark_remote: str | None = None,
             event_map: Path | None = None):
    """Scan with a progress spinner, or reuse the scan of the same data, map and period kept in the state
    directory; bad periods and database problems end in a one-line error."""
    from tools.facts_store import bind
    from tools.period import PeriodError
    from tools.scan_cache import cached_scan
    from tools.warehouse import WarehouseError

    with open_warehouse(db, engine, spark_remote, event_map) as wh:
        bind(wh, load_settings().state_dir)
        try:
            with progress_bar("scanning") as step:
                return cached_scan(wh, period, progress=step)
        except (PeriodError, WarehouseError) as exc:
            raise fail(str(exc))


def _suggestion_table(title: str, suggestions, start: int = 1) -> Table:
    table = Table(title=title, show_lines=True)
    for col in ("#", "RICE", "tweak", "evidence", "weekly uplift"):
        table.add_column(col, overflow="fold")
    for i, s in enumerate(suggestions, start):
        u = s.est_weekly_uplift
        uplift = f"{u.conversions_low:g}-{u.conversions_high:g} orders\n${u.revenue_low:,.0f}-${u.revenue_high:,.0f}" \
            if s.kind != "tracking_issue" else "-"
        table.add_row(str(i), f"{s.rice_score:,.0f}", s.tweak, s.rationale, uplift)
    return table


def print_suggestions(report, limit: int = 10) -> None:
    """The ranked product suggestions as a Rich table, then data quality in its own table, then what the
    event map left out."""
    product, quality = report.product[:limit], report.data_quality[:limit]
    if product:
        console.print(_suggestion_table(
            f"What to fix first (period {report.period}; {len(report.findings)} findings)", product))
    else:
        console.print(f"No product friction found in period {report.period}: nothing stands out.")
    if quality:
        console.print(_suggestion_table("Data quality (fix the tracking; these never outrank product friction)",
                                        quality, len(product) + 1))
    for line in report.disabled:
        console.print(f"not analysed: {line}", style="dim")
    for line in report.notes:
        console.print(line, style="dim")
    for w in report.warnings:
        err_console.print(f"warning: {w}", style="yellow")


@app.command()
def demo(db: DbOption = None) -> None:
    """Build the demo dataset on first use, then print what to fix first."""
    from data.generate import generate as run
    from data.scenario import load_scenario

    target = resolve_db(db)
    if not target.exists():
        with progress_bar("building the demo dataset (first run only)") as step:
            run(load_scenario("demo"), target, progress=step)
    print_suggestions(run_scan(target, "all"))


@app.command()
def scan(
    db: DbOption = None,
    period: Annotated[str, typer.Option(help="all | last_N_days | YYYY-MM-DD..YYYY-MM-DD | YYYY-Www")] = "all",
    as_json: JsonOption = False,
    limit: Annotated[int, typer.Option(min=1, help="suggestions to show")] = 10,
    engine: EngineOption = None,
    spark_remote: RemoteOption = None,
    event_map: MapOption = None,
) -> None:
    """Run every friction detector and rank the suggested tweaks (RICE); data quality in its own section."""
    report = run_scan(db, period, engine, spark_remote, event_map)
    if as_json:
        console.print_json(json.dumps(report.public(), default=str))
    else:
        print_suggestions(report, limit)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="one read-only SELECT over the known tables")],
    db: DbOption = None,
    as_json: JsonOption = False,
    engine: EngineOption = None,
    spark_remote: RemoteOption = None,
) -> None:
    """Run one guarded, read-only SQL query (DuckDB dialect on every engine; row-capped)."""
    from tools.sql_guard import SqlRefused
    from tools.warehouse import WarehouseError

    with open_warehouse(db, engine, spark_remote) as wh:
        try:
            result = wh.run_guarded(query)
        except (SqlRefused, WarehouseError) as exc:
            raise fail(str(exc))
    if as_json:
        console.print_json(result.df.to_json(orient="records", date_format="iso"))
        return
    table = Table(*[str(c) for c in result.df.columns])
    for row in result.df.itertuples(index=False):  # a missing value (NULL) shows as an empty cell
        table.add_row(*("" if v is None or v != v else str(v) for v in row))
    console.print(table)
    if result.truncated:
        console.print(f"(truncated at {len(result.df)} rows)")


def make_agent(db: Path | None, engine: str | None = None, spark_remote: str | None = None,
               event_map: Path | None = None):
    """The InsightAgent for `db`; says once, plainly, when it runs without a language model."""
    from agent.api import InsightAgent
    from tools.semantic.eventmap import MapError
    from tools.warehouse import WarehouseError

    try:
        agent = InsightAgent(db=resolve_db(db), settings=engine_settings(engine, spark_remote, event_map))
    except (WarehouseError, MapError) as exc:
        raise fail(str(exc))
    if agent.mode == "offline":
        err_console.print("No OPENAI_API_KEY or OPENAI_BASE_URL set: answering with the offline analyst.", style="dim")
    return agent


def print_answer(answer) -> None:
    from rich.markdown import Markdown

    console.print(Markdown(plain(answer.text), hyperlinks=False))
    for w in answer.warnings:
        err_console.print(f"note: {w}", style="yellow")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="a question in plain words")],
    db: DbOption = None,
    thread: Annotated[str, typer.Option("--thread", help="conversation id, for follow-up questions")] = "cli",
    as_json: JsonOption = False,
    engine: EngineOption = None,
    spark_remote: RemoteOption = None,
    event_map: MapOption = None,
) -> None:
    """Ask one question; numbers come from SQL over the data."""
    with make_agent(db, engine, spark_remote, event_map) as agent, progress_bar("answering") as step:
        answer = agent.ask(question, thread_id=thread, progress=step)
    if as_json:
        console.print_json(answer.model_dump_json(exclude={"charts", "tables"}))
    else:
        print_answer(answer)


@app.command()
def chat(db: DbOption = None, thread: Annotated[str, typer.Option("--thread")] = "chat",
         engine: EngineOption = None, spark_remote: RemoteOption = None, event_map: MapOption = None) -> None:
    """An interactive conversation with streamed steps (empty line or Ctrl-D to quit)."""
    from agent.api import Answer, Step

    with make_agent(db, engine, spark_remote, event_map) as agent:
        console.print("Ask about your product (e.g. \"What should we fix first?\"). Empty line to quit.")
        while True:
            try:
                question = console.input(Text("you> ", style="bold cyan"))
            except (EOFError, KeyboardInterrupt):
                break
            if not question.strip():
                break
            for event in agent.stream(question, thread_id=thread):
                if isinstance(event, Step):
                    status = "running" if event.ms is None else f"{event.ms:.0f} ms" + ("" if event.ok else " (failed)")
                    err_console.print(f"  {event.tool} {status}", style="dim")
                elif isinstance(event, Answer):
                    print_answer(event)


def run_digest_cli(db: Path | None, week: str | None, out: Path | None, webhook: str | None,
                   engine: str | None = None, spark_remote: str | None = None, event_map: Path | None = None):
    """One digest run, linking Slack to the HTML under the `digest_base_url` setting; bad or empty weeks, webhooks,
    paths and databases end in a one-line error."""
    from agent.digest import WebhookError, run_digest
    from tools.period import PeriodError
    from tools.warehouse import WarehouseError

    settings = load_settings()
    with open_warehouse(db, engine, spark_remote, event_map) as wh:
        try:
            with progress_bar(f"digest {week or 'last full week'}") as step:
                step("scanning")
                return run_digest(wh, settings.state_dir, week, out, webhook, settings.digest_base_url)
        except (PeriodError, WebhookError, WarehouseError, OSError) as exc:
            raise fail(str(exc))


@app.command()
def digest(
    db: DbOption = None,
    week: Annotated[str | None, typer.Option(help="ISO week YYYY-Www (default: the last full week)")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the files to this folder")] = None,
    webhook: Annotated[str | None, typer.Option(help="Slack-compatible webhook URL")] = None,
    engine: EngineOption = None,
    spark_remote: RemoteOption = None,
    event_map: MapOption = None,
) -> None:
    """Build the weekly digest (Markdown + self-contained HTML), save it with history, optionally deliver it."""
    d = run_digest_cli(db, week, out, webhook, engine, spark_remote, event_map)
    console.print(f"digest {d.week}" + (f" (partial week: {d.partial})" if d.partial else "") + f": {len(d.new)} new, "
                  f"{len(d.ongoing)} ongoing, {len(d.resolved)} resolved, {len(d.ended)} ended, "
                  f"{len(d.unconfirmed)} unconfirmed; files: {', '.join(d.files.values())}")
    if d.delivery:
        (console if d.delivery.startswith("delivered") else err_console).print(d.delivery)


@app.command()
def schedule(
    cron: Annotated[str, typer.Option(help="crontab expression, e.g. \"0 8 * * MON\"")] = "0 8 * * MON",
    db: DbOption = None,
    webhook: Annotated[str | None, typer.Option(help="Slack-compatible webhook URL")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the files to this folder")] = None,
    engine: EngineOption = None,
    spark_remote: RemoteOption = None,
    event_map: MapOption = None,
) -> None:
    """Run the digest of the calendar week just ended on a schedule (APScheduler, UTC) and log each run to
    <state_dir>/schedule.log; a week without data (a stalled pipeline) is a failed run, never an old week again."""
    from agent.digest import WebhookError, check_webhook, last_calendar_week
    from agent.schedule import run_forever

    if webhook:
        try:
            check_webhook(webhook)
        except WebhookError as exc:
            raise fail(str(exc))
    try:
        run_forever(cron, lambda: run_digest_cli(db, last_calendar_week(), out, webhook, engine, spark_remote,
                                                 event_map),
                    load_settings().state_dir / "schedule.log")
    except ValueError as exc:
        raise fail(f"--cron {cron!r}: {exc}")


@app.command()
def ui(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="interface to bind (keep 127.0.0.1 for company data)")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="port (default: Gradio's)")] = None,
    event_map: MapOption = None,
) -> None:
    """Serve the Gradio chat UI (login when INSIGHT_UI_USER and INSIGHT_UI_PASSWORD are set)."""
    import os
    import sys

    target = resolve_db(db)
    make_agent(target, event_map=event_map).close()  # fail fast, with a clear message, on a bad database or map
    args = [sys.executable, "-m", "ui.app", "--db", str(target), "--host", host]
    args += ["--port", str(port)] if port else []
    os.execv(sys.executable, args + (["--map", str(event_map)] if event_map else []))  # the UI is its own program


@app.command("check-tracking")
def check_tracking_cmd(
    db: DbOption = None,
    plan: Annotated[Path | None, typer.Option(
        help="tracking plan YAML, or an event map file holding one (default: the event map's plan, if any)")] = None,
    period: Annotated[str, typer.Option(help="all | last_N_days | YYYY-MM-DD..YYYY-MM-DD | YYYY-Www")] = "all",
    as_json: JsonOption = False,
    engine: EngineOption = None,
    spark_remote: RemoteOption = None,
    event_map: MapOption = None,
) -> None:
    """Check data quality, and the data against the team's tracking plan when there is one."""
    from tools.period import PeriodError, resolve_period
    from tools.tracking import PlanError, check_tracking, load_plan

    with open_warehouse(db, engine, spark_remote, event_map) as wh:
        try:
            result = check_tracking(wh, load_plan(plan) if plan else None, resolve_period(wh, period))
        except (PlanError, PeriodError) as exc:
            raise fail(str(exc))
    if as_json:
        console.print_json(json.dumps([f.model_dump() for f in result.findings], default=str))
        return
    console.print(result.summary if not result.findings else f"{len(result.findings)} tracking problem(s):")
    for f in result.findings:
        console.print(f"- {f.title}")


@app.command("map")
def map_(
    db: DbOption = None,
    write: Annotated[Path | None, typer.Option("--write", help="save the map as YAML here, to edit and pass as --map")]
    = None,
    with_plan: Annotated[bool, typer.Option(
        "--with-plan", help="with --write: start a tracking plan from the data (its events and dimension values)")]
    = False,
    as_json: JsonOption = False,
    event_map: MapOption = None,
) -> None:
    """Show the event map: what each event and field means, what was recognized or guessed, what is missing."""
    from tools.semantic.infer import draft_plan

    with open_warehouse(db, event_map=event_map) as wh:
        emap = wh.event_map
        if write:
            if with_plan:
                emap = emap.model_copy(update={"tracking_plan": draft_plan(wh)})
            try:
                write.write_text(emap.to_yaml(), encoding="utf-8")
            except OSError as exc:
                raise fail(f"cannot write {write}: {exc.strerror}")
            console.print(f"wrote {write}: edit it, then use it with --map {write} (or `insight import ... --map`)")
            return
    if as_json:
        console.print_json(json.dumps({**emap.model_dump(mode="json"), "unavailable": emap.unavailable()}))
        return
    print_map(emap)


def print_map(emap) -> None:
    """The map as a newcomer reads it: funnels, roles, dimensions, then what is missing and what that disables."""
    notes = emap.notes
    table = Table(title="Event map", show_lines=False)
    for col in ("entry", "meaning", "how it was found"):
        table.add_column(col, overflow="fold")
    for name, steps in emap.funnels.items():
        default = " (default)" if name == emap.default_funnel else ""
        table.add_row(f"funnel {name}{default}", " -> ".join(steps),
                      notes.get(f"funnels.{name}", "given in the map"))
    for role, value in emap.roles:
        if value is None:
            continue
        fields = ", ".join(f"{k}={v}" for k, v in value.model_dump(exclude_none=True).items())
        table.add_row(f"role {role}", fields, notes.get(f"roles.{role}", "given in the map"))
    for name, ref in emap.dimensions.items():
        table.add_row(f"dimension {name}", ref, "discovered" if "dimensions" in notes else "given in the map")
    console.print(table)
    if emap.tracking_plan is None:
        console.print("No tracking plan: plan checks are off (`insight map --write FILE --with-plan` starts one).")
    for analysis, need in emap.unavailable().items():
        console.print(f"no {need}: {analysis} disabled", style="yellow")


@app.command("eval")
def eval_(
    users: Annotated[int | None, typer.Option(min=500, help="population per scenario (default: each scenario's)")]
    = None,
    formats: Annotated[str, typer.Option(
        help="foreign renderings to test besides Segment: comma-separated of ga4, wide_csv, amplitude, mixpanel, "
             "posthog; 'none' for Segment only")] = "ga4,wide_csv,amplitude,mixpanel,posthog",
    scenarios: Annotated[str | None, typer.Option(help="comma-separated scenario names (default: all)")] = None,
    out: Annotated[Path | None, typer.Option(help="write the full JSON result here")] = None,
) -> None:
    """Detection benchmark: recall of planted frictions at full and half effect, in every export format and
    vocabulary, null findings, ranks."""
    from benchmarks.detection import markdown, run
    from data.renderers import FORMATS

    chosen = () if formats.strip() == "none" else tuple(f.strip() for f in formats.split(",") if f.strip())
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown:
        raise fail(f"--formats {unknown[0]!r}: use {', '.join(FORMATS)} or none")
    with progress_bar("evaluating") as step:
        result = run(users=users, progress=step, formats=chosen,
                     scenarios=tuple(s.strip() for s in scenarios.split(",")) if scenarios else None)
    console.print(markdown(result))
    if out:
        out.write_text(json.dumps(result, indent=2, default=str))


@app.command()
def bench(
    events: Annotated[int, typer.Option(min=10_000, help="events in the benchmark dataset")] = 10_000_000,
    repeat: Annotated[int, typer.Option(min=1)] = 3,
    out: Annotated[Path | None, typer.Option(help="write the JSON result here")] = None,
) -> None:
    """Speed benchmark, every figure with its baseline: the scan cold, on stored facts and again; the funnel engine
    against ClickHouse windowFunnel (chdb), pandas and its own SQL."""
    from benchmarks.speed import markdown, run

    result = run(events=events, repeat=repeat, progress=lambda m: err_console.print(m, highlight=False))
    console.print(markdown(result))
    if out:
        out.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    app()
