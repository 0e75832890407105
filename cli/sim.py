"""``polybus sim``: run, compare and sweep simulation scenarios.

Tables go to the terminal (stdout), progress to stderr; ``--json`` prints the
documented JSON document instead (docs/sim.md); ``--out DIR`` also writes it
to a file. The same seed gives the same numbers, and the seeds are recorded.
Ctrl-C stops the run; what completed is reported (exit status 130).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from polybus.cli.errors import friendly_errors
from polybus.sim.loader import load_scenario
from polybus.sim.output import dumps, print_document
from polybus.sim.report import sweep_chart
from polybus.sim.runner import run_scenario
from polybus.sim.sweep import parse_params, sweep
from polybus.sim.topology import Scenario

INTERRUPTED_EXIT = 130


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback; the bar appears only once the run has lasted a second."""
    console = Console(stderr=True)
    bar = Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )  # fmt: skip
    task = bar.add_task(label, total=None)
    started = time.monotonic()
    shown = False

    def update(done: int, total: int) -> None:
        nonlocal shown
        if enabled and not shown and time.monotonic() - started > 1.0:
            bar.start()
            shown = True
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if shown:
            bar.stop()


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.argument("file", type=click.Path(exists=True, dir_okay=False)),
        click.option("--seed", type=int, default=None, help="Base seed (default: the scenario's)."),
        click.option("--replications", "-r", type=click.IntRange(1), default=None, help="Independent replications."),
        click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None, help="Simulated seconds per replication."),
        click.option("--workers", type=click.IntRange(1), default=None, help="Processes (default: CPU count)."),
        click.option("--json", "as_json", is_flag=True, help="Print the JSON document instead of tables."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Also write the JSON (and charts) here."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _write(out_dir: str | None, name: str, text: str) -> Path | None:
    if out_dir is None:
        return None
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_text(text, encoding="utf-8")
    return path / name


def _finish(doc: dict[str, Any], as_json: bool, out_dir: str | None, name: str) -> None:
    text = dumps(doc)
    if as_json:
        click.echo(text)
    else:
        print_document(doc, Console(soft_wrap=False, width=200))
    written = _write(out_dir, name, text)
    if written and not as_json:
        click.echo(f"wrote {written}")
    if doc["interrupted"]:
        click.echo(
            f"interrupted: {doc['completed_replications']} of {doc['replications']} replications completed "
            f"({doc['tasks_completed']} of {doc['tasks_total']} runs)",
            err=True,
        )
        raise click.exceptions.Exit(INTERRUPTED_EXIT)


def _load(file: str, duration: float | None) -> Scenario:
    """The scenario, with --duration applied (warm-up cut to a tenth of it if it would not fit)."""
    if duration is None:
        return load_scenario(file)
    base = load_scenario(file)
    overrides: dict[str, object] = {"duration": duration}
    if base.warmup >= duration:
        overrides["warmup"] = duration / 10
    return load_scenario(file, overrides)


@click.group("sim")
def sim_group() -> None:
    """Simulate request-based and event-based topologies (SimPy, validated against queueing theory)."""


@sim_group.command("run")
@_common
@click.option(
    "--topology", "topologies", multiple=True, help="Run only these topologies (repeatable)."
)
@friendly_errors
def run_command(
    file: str, seed: int | None, replications: int | None, duration: float | None, workers: int | None,
    as_json: bool, out_dir: str | None, topologies: tuple[str, ...],
) -> None:  # fmt: skip
    """Run every topology of a scenario FILE and report latency, throughput, backlog and consistency."""
    scenario = _load(file, duration)
    with _progress(not as_json, "simulating") as progress:
        doc = run_scenario(
            scenario, seed=seed, replications=replications, topologies=topologies or None,
            workers=workers, progress=progress,
        )  # fmt: skip
    _finish(doc, as_json, out_dir, "run.json")


@sim_group.command("compare")
@_common
@click.option(
    "--providers", default=None, help="Comma-separated broker profiles, e.g. aws,azure,gcp."
)
@friendly_errors
def compare_command(
    file: str, seed: int | None, replications: int | None, duration: float | None, workers: int | None,
    as_json: bool, out_dir: str | None, providers: str | None,
) -> None:  # fmt: skip
    """Run the scenario's topologies side by side (common random numbers), optionally under several providers."""
    scenario = _load(file, duration)
    provs = [p.strip() for p in providers.split(",") if p.strip()] if providers else None
    with _progress(not as_json, "comparing") as progress:
        doc = run_scenario(
            scenario, seed=seed, replications=replications, providers=provs, workers=workers,
            progress=progress,
        )  # fmt: skip
    _finish(doc, as_json, out_dir, "compare.json")


@sim_group.command("sweep")
@_common
@click.option(
    "--param", "params", multiple=True, required=True, help="PATH=V1,V2,... (several make a grid)."
)
@click.option(
    "--metric",
    "metric_path",
    default=None,
    help="Dotted metric path (default: first flow's latency p99).",
)
@click.option("--topology", "topologies", multiple=True, help="Sweep only these topologies.")
@click.option("--providers", default=None, help="Comma-separated broker profiles.")
@click.option(
    "--scheduler",
    default=None,
    help="Dask scheduler address (tcp://HOST:PORT); default: local processes.",
)
@friendly_errors
def sweep_command(
    file: str, seed: int | None, replications: int | None, duration: float | None, workers: int | None,
    as_json: bool, out_dir: str | None, params: tuple[str, ...], metric_path: str | None,
    topologies: tuple[str, ...], providers: str | None, scheduler: str | None,
) -> None:  # fmt: skip
    """Run the scenario over a grid of parameter values; table and chart of one metric against them."""
    grid = parse_params(params)
    provs = [p.strip() for p in providers.split(",") if p.strip()] if providers else None
    with _progress(not as_json, "sweeping") as progress:
        doc = sweep(
            file, grid, seed=seed, replications=replications, duration=duration,
            topologies=topologies or None, providers=provs, workers=workers,
            metric_path=metric_path, progress=progress, scheduler=scheduler,
        )  # fmt: skip
    text = dumps(doc)
    if as_json:
        click.echo(text)
    else:
        _print_sweep(doc)
    _write(out_dir, "sweep.json", text)
    if len(grid) == 1 and doc["points"]:
        _write(out_dir, "sweep.svg", sweep_chart(doc))
    if doc["interrupted"]:
        click.echo(f"interrupted after {len(doc['points'])} grid points", err=True)
        raise click.exceptions.Exit(INTERRUPTED_EXIT)


def _print_sweep(doc: dict[str, Any]) -> None:
    table = Table(title=f"{doc['metric']} (mean ± 95% CI half-width)")
    names = list(doc["params"])
    keys = list(doc["points"][0]["metric"]) if doc["points"] else []
    for col in (*names, *keys):
        table.add_column(col, justify="right")
    for point in doc["points"]:
        cells = []
        for k in keys:
            m = point["metric"].get(k)
            if not m or m.get("mean") is None:
                cells.append("-")
            else:
                hw = m.get("halfwidth")
                cells.append(f"{m['mean']:.4g}" + (f" ±{hw:.2g}" if hw is not None else ""))
        table.add_row(*[str(point["params"][n]) for n in names], *cells)
    Console(width=200).print(table)


@sim_group.command("exercise")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--check", "run_check", is_flag=True, help="Run each exercise and show the measured answer."
)
@friendly_errors
def exercise_command(file: str, run_check: bool) -> None:
    """List a scenario's exercises (question, what to change); --check runs them and shows the answers."""
    from polybus.sim.exercises import check, exercises

    items = exercises(file)
    if not items:
        click.echo("no exercises in this scenario")
        return
    for n, ex in enumerate(items, 1):
        click.echo(f"{n}. {ex['question']}")
        click.echo(f"   change: {ex['change']}  (topology {ex['topology']}, metric {ex['metric']})")
        if run_check:
            out = check(file, ex)
            verdict = "as expected" if out.passed else "NOT as expected: " + "; ".join(out.failures)
            click.echo(f"   baseline {out.baseline:.4g} -> changed {out.changed:.4g} ({verdict})")
            click.echo(f"   answer: {' '.join(out.answer.split())}")


@sim_group.command("report")
@_common
@click.option(
    "--providers", default="aws,azure,gcp", show_default=True, help="Broker profiles to compare."
)
@friendly_errors
def report_command(
    file: str, seed: int | None, replications: int | None, duration: float | None, workers: int | None,
    as_json: bool, out_dir: str | None, providers: str,
) -> None:  # fmt: skip
    """Write a self-contained HTML report (latency CDFs, backlog, consistency window, cost) and its SVGs to --out."""
    from polybus.sim.report import write_report

    if out_dir is None:
        raise click.UsageError("report needs --out DIR")
    scenario = _load(file, duration)
    provs = [p.strip() for p in providers.split(",") if p.strip()] or None
    with _progress(not as_json, "simulating") as progress:
        doc = run_scenario(
            scenario, seed=seed, replications=replications, providers=provs, workers=workers,
            progress=progress,
        )  # fmt: skip
    _write(out_dir, "report.json", dumps(doc))
    page = write_report(doc, out_dir)
    click.echo(dumps(doc) if as_json else f"wrote {page}")
    if doc["interrupted"]:
        raise click.exceptions.Exit(INTERRUPTED_EXIT)
