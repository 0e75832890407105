"""Parameter sweeps: a grid of scenario overrides, each point run with its replications."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from polybus.core.errors import ConfigError, Problem
from polybus.sim.dask_backend import DASK
from polybus.sim.loader import load_scenario
from polybus.sim.lookup import check_metric, summary_at
from polybus.sim.results import RunDocument, Summary, to_json
from polybus.sim.runner import run_scenario
from polybus.sim.topology import Scenario

SWEEP_SCHEMA = "polybus.sim.sweep/1"


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: its parameter values, the metric per run, and the whole run document."""

    params: Mapping[str, Any]
    metric: Mapping[str, Summary]
    document: RunDocument


@dataclass(frozen=True)
class SweepDocument:
    """A sweep (wire format ``polybus.sim.sweep/1``)."""

    file: str
    params: Mapping[str, tuple[Any, ...]]
    metric: str
    points: tuple[SweepPoint, ...]
    interrupted: bool
    schema: str = SWEEP_SCHEMA

    def to_json(self) -> dict[str, Any]:
        """The JSON-able sweep document."""
        out = to_json(self)
        assert isinstance(out, dict)
        return out


def parse_params(specs: Sequence[str]) -> dict[str, list[Any]]:
    """``PATH=V1,V2,...`` strings to {path: [values]} (values parsed as YAML scalars)."""
    problems: list[Problem] = []
    out: dict[str, list[Any]] = {}
    for spec in specs:
        path, sep, values = spec.partition("=")
        if not sep or not path or not values:
            problems.append(Problem("--param", spec, "must look like PATH=V1,V2,..."))
            continue
        out[path.strip()] = [yaml.safe_load(v) for v in values.split(",")]
    if problems:
        raise ConfigError("sweep parameters", problems)
    return out


def default_metric(scenario: Scenario) -> str:
    """The p99 response latency of the scenario's first flow."""
    return f"flows.{scenario.workloads[0].flow}.latency.p99"


def _scenario(file: str | Path, overrides: dict[str, object], duration: float | None) -> Scenario:
    if duration is not None:
        overrides["duration"] = duration
        if load_scenario(file).warmup >= duration:
            overrides["warmup"] = duration / 10
    return load_scenario(file, overrides)


def sweep(
    file: str | Path,
    params: Mapping[str, Sequence[Any]],
    *,
    seed: int | None = None,
    replications: int | None = None,
    duration: float | None = None,
    topologies: Sequence[str] | None = None,
    providers: Sequence[str] | None = None,
    workers: int | None = None,
    metric_path: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    scheduler: str | None = None,
) -> SweepDocument:
    """Run every grid point (same seeds at every point: common random numbers) and tabulate `metric_path`.

    Before anything is simulated: every grid point's overrides are validated,
    the metric path is checked against what the topologies report (a typo is
    a ConfigError with a did-you-mean), and with `scheduler` the Dask extra is
    checked (MissingExtraError).
    """
    if scheduler is not None:
        DASK.check()
    names = list(params)
    grid = list(itertools.product(*(params[n] for n in names)))
    scenarios = [
        _scenario(file, dict(zip(names, values, strict=True)), duration) for values in grid
    ]
    first = scenarios[0]
    path = metric_path or default_metric(first)
    for top in topologies or first.topologies:
        if top in first.topologies:
            check_metric(first, top, path)
    points: list[SweepPoint] = []
    interrupted = False
    for i, (values, scenario) in enumerate(zip(grid, scenarios, strict=True)):
        doc = run_scenario(
            scenario, seed=seed, replications=replications, topologies=topologies,
            providers=providers, workers=workers, scheduler=scheduler,
        )  # fmt: skip
        points.append(
            SweepPoint(
                params=dict(zip(names, values, strict=True)),
                metric={key: summary_at(run, path) for key, run in doc.runs.items()},
                document=doc,
            )
        )
        if progress:
            progress(i + 1, len(grid))
        if doc.interrupted:
            interrupted = True
            break
    return SweepDocument(
        file=str(file),
        params={n: tuple(params[n]) for n in names},
        metric=path,
        points=tuple(points),
        interrupted=interrupted,
    )
