"""``polybus sim live``, ``sim calibrate`` and ``sim from-traces``: the simulation meets a running system.

`live` runs a scenario's topologies in real time against a real Bus (built
here, from the configuration and ``--provider``; sim code never imports an
adapter) and prints each figure beside the simulation of the same scenario.
`calibrate` fits a provider profile's latencies from spans; `from-traces`
writes the scenario that spans imply.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from polybus.cli.errors import friendly_errors
from polybus.core.errors import ConfigError, Problem
from polybus.sim.calibrate import FITS
from polybus.sim.loader import load_scenario
from polybus.sim.topology import Scenario

INTERRUPTED_EXIT = 130


def _fmt(v: float | None, metric: str) -> str:
    from polybus.sim.live.page import _cell

    return _cell(v, metric)


def _print(comparisons: list[Any], console: Console) -> None:
    c0 = comparisons[0]
    console.print(
        f"[bold]{c0.scenario}[/bold]: live on {c0.provider} against its simulation, seed {c0.seed}, "
        f"{c0.duration:g} s (warm-up {c0.warmup:g} s), rates x{c0.rate_scale:g}"
        + (f", calibrated profile {c0.profile}" if c0.profile else "")
    )
    table = Table(title="Simulated vs live (ms for latencies and windows)", title_justify="left")
    for col, left in (("topology", True), ("figure", True), ("simulated", False), ("live", False),
                      ("relative error", False)):  # fmt: skip
        table.add_column(col, justify="left" if left else "right", overflow="fold")
    for c in comparisons:
        for r in c.rows:
            err = "-" if r.relative_error is None else f"{r.relative_error * 100:+.1f}%"
            table.add_row(
                c.topology, r.metric, _fmt(r.simulated, r.metric), _fmt(r.live, r.metric), err
            )
    console.print(table)
    for c in comparisons:
        for flag in c.live.overload:
            console.print(f"[bold red]warning[/bold red] {c.topology} live: {flag.message}")


def _bus(ctx: click.Context, provider: str | None) -> Any:
    from polybus.adapters import connect

    return connect(ctx.obj.get("config_path") if ctx.obj else None, provider=provider)


@click.command("live")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--topology",
    "topologies",
    multiple=True,
    help="Run only these topologies (repeatable; default: all).",
)
@click.option(
    "--provider",
    default="local",
    show_default=True,
    help="The Bus to run on (and the profile the simulation uses).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds per topology, live and simulated.",
)
@click.option(
    "--rate-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Multiply every arrival rate (go low on a small machine).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed (default: the scenario's); the live run draws replication 0's streams.",
)
@click.option(
    "--profile",
    "profile_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Simulate with this calibrated profile's latencies (from sim calibrate).",
)
@click.option(
    "--transport",
    type=click.Choice(["http", "local"]),
    default="http",
    show_default=True,
    help="Synchronous calls over loopback HTTP or in process.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the comparison document instead of tables."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write index.html (both CDFs on one chart), SVGs and live.json here.",
)
@click.option(
    "--trace-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the live run's publish/deliver spans as JSON lines (calibrate's input).",
)
@click.pass_context
@friendly_errors
def live_command(
    ctx: click.Context, file: str, topologies: tuple[str, ...], provider: str, duration: float,
    rate_scale: float, seed: int | None, profile_file: str | None, transport: str, as_json: bool,
    out_dir: str | None, trace_out: str | None,
) -> None:  # fmt: skip
    """Run a scenario FILE live on a real bus, then simulate it, and print both with the relative error."""
    from polybus.sim.calibrate import latency_overrides
    from polybus.sim.live import compare, prepare, run_live
    from polybus.sim.live.page import document, write_page
    from polybus.sim.live.run import needs_bus

    overrides = latency_overrides(profile_file) if profile_file else None
    scenario = prepare(
        load_scenario(file), provider=provider, duration=duration, rate_scale=rate_scale,
        seed=seed, overrides=overrides,
    )  # fmt: skip
    names = list(topologies) or list(scenario.topologies)
    _check_topologies(scenario, names)
    bus = _bus(ctx, provider) if any(needs_bus(scenario, t) for t in names) else None
    interrupted = False
    comparisons: list[Any] = []
    spans: list[Any] = []
    try:
        for name in names:
            if not as_json:
                click.echo(f"running {name} live for {duration:g} s ...", err=True)
            run = run_live(scenario, name, bus=bus, transport=transport)
            spans.extend(run.spans)
            comparisons.append(compare(scenario, run, rate_scale=rate_scale, profile=profile_file))
    except KeyboardInterrupt:
        click.echo(f"interrupted: {len(comparisons)} of {len(names)} topologies compared", err=True)
        if not comparisons:
            raise click.exceptions.Exit(INTERRUPTED_EXIT) from None
        interrupted = True
    finally:
        if bus is not None:
            bus.close()
    if trace_out:
        Path(trace_out).write_text("".join(s.to_json() + "\n" for s in spans), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(document(comparisons), indent=2, allow_nan=False))
    else:
        _print(comparisons, Console(soft_wrap=False))
    if out_dir:
        page = write_page(comparisons, out_dir)
        if not as_json:
            click.echo(f"wrote {page}")
    if trace_out and not as_json:
        click.echo(f"{len(spans)} span(s) written to {trace_out}")
    if interrupted:
        raise click.exceptions.Exit(INTERRUPTED_EXIT)


def _check_topologies(scenario: Scenario, names: list[str]) -> None:
    from difflib import get_close_matches

    problems = []
    for n in names:
        if n not in scenario.topologies:
            close = get_close_matches(n, list(scenario.topologies), 1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                Problem("--topology", n, f"{hint}must be one of {', '.join(scenario.topologies)}")
            )
    if problems:
        raise ConfigError(scenario.file, problems)


def _fit_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--fit``: how 30 samples or more become a distribution (one of sim.calibrate.FITS)."""
    return click.option(
        "--fit",
        type=click.Choice(list(FITS)),
        default="lognormal",
        show_default=True,
        help=help,
    )


@click.command("calibrate")
@click.argument("spans", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--provider",
    default="local",
    show_default=True,
    help="The profile to start from (its other figures are kept).",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the calibrated profile YAML here (default: print it).",
)
@_fit_option("Write the log-normal fit, or 200 empirical quantiles (keeps the tail).")
@click.option("--json", "as_json", is_flag=True, help="Print the fits as JSON.")
@friendly_errors
def calibrate_command(
    spans: str, provider: str, out_file: str | None, fit: str, as_json: bool
) -> None:
    """Fit publish and delivery latency (log-normal MLE, KS D) from SPANS and write a profile."""
    from polybus.sim.calibrate import calibrate, profile_document, write_profile
    from polybus.sim.profiles import profile_paths

    paths = profile_paths()
    if provider not in paths:
        raise ConfigError(
            "--provider", [Problem("provider", provider, f"must be one of {', '.join(paths)}")]
        )
    base = yaml.safe_load(paths[provider].read_text(encoding="utf-8"))
    cal = calibrate(spans, provider)
    if as_json:
        fits = profile_document(cal, base, fit=fit)["calibration"]
        click.echo(json.dumps(fits, indent=2, allow_nan=False))
    else:
        for label, f in (("publish", cal.publish), ("delivery", cal.delivery)):
            click.echo(
                f"{label:9s} n={f.n:6d}  median {f.median * 1000:.3f} ms  p99 {f.p99 * 1000:.3f} ms"
                f"  sigma {f.sigma:.3f}  KS D {f.ks:.3f}"
            )
        if cal.skipped_queued:
            click.echo(f"({cal.skipped_queued} deliveries that waited for a busy worker left out)")
    if out_file:
        path = write_profile(cal, base, out_file, fit)
        if not as_json:
            click.echo(f"wrote {path}")
    elif not as_json:
        click.echo(yaml.safe_dump(profile_document(cal, base, fit=fit), sort_keys=False), nl=False)


@click.command("from-traces")
@click.argument("spans", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", default=None, help="Scenario name (default: the file's stem).")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the scenario YAML here (default: print it).",
)
@_fit_option("Fit 30+ samples with a log-normal, or keep 200 empirical quantiles (keeps the tail).")
@click.option(
    "--host-cpus",
    type=click.IntRange(min=1),
    default=None,
    help="The traced services ran on one host with this many CPUs (one Python process: 1): "
    "model them sharing it, and fit their times as CPU demands.",
)
@friendly_errors
def from_traces_command(
    spans: str, name: str | None, out_file: str | None, fit: str, host_cpus: int | None
) -> None:
    """Derive a scenario (services, calls, publications, joins, latencies, rates) from SPANS (JSON lines)."""
    from polybus.sim.from_traces import from_traces, to_yaml

    doc, scenario = from_traces(spans, name, fit, host_cpus)
    text = to_yaml(doc)
    if out_file:
        Path(out_file).write_text(text, encoding="utf-8")
        top = next(iter(scenario.topologies.values()))  # "event", or "request" (calls only)
        click.echo(
            f"wrote {out_file}: {len(top.services)} service(s), "
            f"{len({p.topic for s in top.services.values() for p in s.publishes})} topic(s), "
            f"{len(scenario.workloads)} flow(s)"
        )
    else:
        click.echo(text, nl=False)
