"""``polybus sim``: run, compare and sweep simulation scenarios; exercises, templates and the schema.

Tables go to the terminal (stdout, at the terminal's width), progress to
stderr; ``--json`` prints the documented JSON document instead (docs/sim.md);
``--out DIR`` also writes it to a file. The same seed gives the same numbers,
and the seeds are recorded. Ctrl-C stops the run; what completed is reported
(exit status 130). ``--set PATH=VALUE`` changes one value of the scenario for
this run (repeatable).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from polybus.cli.errors import friendly_errors
from polybus.cli.sim_lab import lab_command
from polybus.cli.sim_live import calibrate_command, from_traces_command, live_command
from polybus.core.errors import ConfigError, Problem
from polybus.sim.loader import load_scenario
from polybus.sim.output import dumps, print_document
from polybus.sim.results import RunDocument
from polybus.sim.runner import run_scenario
from polybus.sim.sweep import SweepDocument, parse_params, sweep
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
        click.option("--set", "sets", multiple=True, metavar="PATH=VALUE", help="Change one scenario value for this run, e.g. topologies.event.services.billing.workers=2 (repeatable; VALUE is YAML)."),
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


def _finish(doc: RunDocument, as_json: bool, out_dir: str | None, name: str) -> None:
    text = dumps(doc)
    if as_json:
        click.echo(text)
    else:
        print_document(doc, Console(soft_wrap=False))
    written = _write(out_dir, name, text)
    if written and not as_json:
        click.echo(f"wrote {written}")
    if doc.interrupted:
        click.echo(
            f"interrupted: {doc.completed_replications} of {doc.replications} replications completed "
            f"({doc.tasks_completed} of {doc.tasks_total} runs)",
            err=True,
        )
        raise click.exceptions.Exit(INTERRUPTED_EXIT)


def parse_sets(specs: tuple[str, ...]) -> dict[str, object]:
    """``PATH=VALUE`` options to overrides; VALUE is parsed as YAML (3 -> int, 0.5 -> float, aws -> str)."""
    out: dict[str, object] = {}
    problems: list[Problem] = []
    for spec in specs:
        path, sep, value = spec.partition("=")
        if not sep or not path.strip():
            problems.append(
                Problem("--set", spec, "must look like PATH=VALUE, e.g. workload.checkout.rate=60")
            )
            continue
        try:
            out[path.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            problems.append(Problem(f"--set {path.strip()}", value, f"is not a YAML value: {exc}"))
    if problems:
        raise ConfigError("--set", problems)
    return out


def _load(file: str, duration: float | None, sets: tuple[str, ...] = ()) -> Scenario:
    """The scenario with --set values and --duration applied (warm-up cut to a tenth of it if it would not fit)."""
    overrides = parse_sets(sets)
    if duration is None:
        return load_scenario(file, overrides)
    base = load_scenario(file, overrides)
    overrides["duration"] = duration
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
    as_json: bool, out_dir: str | None, sets: tuple[str, ...], topologies: tuple[str, ...],
) -> None:  # fmt: skip
    """Run every topology of a scenario FILE and report latency, throughput, backlog and consistency."""
    scenario = _load(file, duration, sets)
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
    as_json: bool, out_dir: str | None, sets: tuple[str, ...], providers: str | None,
) -> None:  # fmt: skip
    """Run the scenario's topologies side by side (common random numbers), optionally under several providers."""
    scenario = _load(file, duration, sets)
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
    as_json: bool, out_dir: str | None, sets: tuple[str, ...], params: tuple[str, ...],
    metric_path: str | None, topologies: tuple[str, ...], providers: str | None, scheduler: str | None,
) -> None:  # fmt: skip
    """Run the scenario over a grid of parameter values; table and chart of one metric against them."""
    from polybus.sim.report import sweep_chart

    grid = parse_params(params)
    if sets:
        raise click.UsageError("sweep takes --param PATH=V1,V2 (a single value is fine), not --set")
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
    if len(grid) == 1 and doc.points:
        _write(out_dir, "sweep.svg", sweep_chart(doc.to_json()))
    if doc.interrupted:
        click.echo(f"interrupted after {len(doc.points)} grid points", err=True)
        raise click.exceptions.Exit(INTERRUPTED_EXIT)


def _print_sweep(doc: SweepDocument) -> None:
    table = Table(title=f"{doc.metric} (mean ± 95% CI half-width)", title_justify="left")
    names = list(doc.params)
    keys = list(doc.points[0].metric) if doc.points else []
    for col in (*names, *keys):
        table.add_column(col, justify="right")
    for point in doc.points:
        cells = []
        for k in keys:
            m = point.metric.get(k)
            if m is None or m.mean is None:
                cells.append("-")
            else:
                hw = m.halfwidth
                cells.append(f"{m.mean:.4g}" + (f" ±{hw:.2g}" if hw is not None else ""))
        table.add_row(*[str(point.params[n]) for n in names], *cells)
    Console().print(table)


@sim_group.command("exercise")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--only", "only", type=click.IntRange(1), default=None, help="Work on exercise N only."
)
@click.option(
    "--predict", is_flag=True, help="With --only: ask for your prediction, then run and reveal."
)
@click.option(
    "--check",
    "run_check",
    is_flag=True,
    help="Run the exercises: with --only, reveal that answer; without, only say whether each holds.",
)
@click.option(
    "--workers", type=click.IntRange(1), default=None, help="Processes (default: CPU count)."
)
@friendly_errors
def exercise_command(
    file: str, only: int | None, predict: bool, run_check: bool, workers: int | None
) -> None:
    """List a scenario's exercises; --only N --predict asks for your guess before revealing the measured answer."""
    from polybus.sim.exercises import check, validate

    items = validate(file)
    if not items:
        click.echo("no exercises in this scenario")
        return
    if predict and only is None:
        raise click.UsageError("--predict needs --only N (one exercise at a time)")
    if only is not None and only > len(items):
        raise click.UsageError(f"--only must be 1..{len(items)} ({len(items)} exercises)")
    chosen = [(only, items[only - 1])] if only else list(enumerate(items, 1))
    failed = 0
    for n, ex in chosen:
        click.echo(f"{n}. {ex.question}")
        change = ", ".join(f"{k}={v}" for k, v in ex.change.items())
        click.echo(f"   change: {change}  (topology {ex.topology}, metric {ex.metric})")
        guess = None
        if predict:
            guess = click.prompt(
                "   Your prediction: how will it change? (e.g. +30%, -10%, up, down, same)",
                default="", show_default=False,
            )  # fmt: skip
        if not (predict or run_check):
            continue
        out = check(file, ex, workers=workers)
        if only is None:  # --check over all: a verdict, never the answers themselves
            click.echo("   holds" if out.passed else "   does NOT hold: " + "; ".join(out.failures))
            failed += not out.passed
            continue
        if guess:
            click.echo(f"   you predicted: {guess}")
        click.echo(f"   measured: {out.reveal()}")
        verdict = (
            "as expected" if out.passed else "NOT as expected (" + "; ".join(out.failures) + ")"
        )
        click.echo(f"   {verdict}")
        click.echo(f"   answer: {out.answer}")
    if failed:
        raise click.exceptions.Exit(1)


@sim_group.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where to write NAME.yaml.",
)
@friendly_errors
def new_command(name: str, directory: str) -> None:
    """Write NAME.yaml: a commented two-topology scenario with one exercise, ready to run and edit."""
    stem = name[:-5] if name.endswith(".yaml") else name
    path = Path(directory) / f"{stem}.yaml"
    if path.exists():
        raise click.ClickException(f"{path} exists; choose another name or remove it")
    template = (resources.files("polybus.sim") / "templates" / "scenario.yaml").read_text(
        encoding="utf-8"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template.format(name=stem, file=path), encoding="utf-8")
    load_scenario(path)  # the template always loads; a broken one fails here, not in class
    click.echo(f"wrote {path}: run it with  polybus sim run {path}")


@sim_group.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of scenario files (point your editor's YAML support at it)."""
    from polybus.sim.schema import scenario_schema

    click.echo(json.dumps(scenario_schema(), indent=2))


@sim_group.command("report")
@_common
@click.option(
    "--providers", default="aws,azure,gcp", show_default=True, help="Broker profiles to compare."
)
@friendly_errors
def report_command(
    file: str, seed: int | None, replications: int | None, duration: float | None, workers: int | None,
    as_json: bool, out_dir: str | None, sets: tuple[str, ...], providers: str,
) -> None:  # fmt: skip
    """Write a self-contained HTML report (latency CDFs, backlog, consistency window, cost) and its SVGs to --out."""
    from polybus.sim.report import write_report

    if out_dir is None:
        raise click.UsageError("report needs --out DIR")
    scenario = _load(file, duration, sets)
    provs = [p.strip() for p in providers.split(",") if p.strip()] or None
    with _progress(not as_json, "simulating") as progress:
        doc = run_scenario(
            scenario, seed=seed, replications=replications, providers=provs, workers=workers,
            progress=progress,
        )  # fmt: skip
    _write(out_dir, "report.json", dumps(doc))
    page = write_report(doc.to_json(), out_dir)
    click.echo(dumps(doc) if as_json else f"wrote {page}")
    if doc.interrupted:
        raise click.exceptions.Exit(INTERRUPTED_EXIT)


sim_group.add_command(lab_command)
sim_group.add_command(live_command)
sim_group.add_command(calibrate_command)
sim_group.add_command(from_traces_command)
