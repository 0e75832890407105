"""Parameter sweeps: a grid of scenario overrides, each point run with its replications."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from polybus.core.errors import ConfigError, Problem
from polybus.sim.dask_backend import DASK
from polybus.sim.loader import load_scenario
from polybus.sim.runner import run_scenario

SWEEP_SCHEMA = "polybus.sim.sweep/1"


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


def metric(run: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    """The summary at dotted `path` inside one run (e.g. ``flows.checkout.latency.p99``)."""
    node: Any = run
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, Mapping) and "mean" in node else None


def default_metric(run: Mapping[str, Any]) -> str:
    """The p99 response latency of the run's first flow."""
    flow = next(iter(run["flows"]))
    return f"flows.{flow}.latency.p99"


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
) -> dict[str, Any]:
    """Run every grid point (same seeds at every point: common random numbers) and tabulate `metric_path`.

    With `scheduler`, the Dask extra is checked first: MissingExtraError before any simulation.
    """
    if scheduler is not None:
        DASK.check()
    names = list(params)
    grid = list(itertools.product(*(params[n] for n in names)))
    points: list[dict[str, Any]] = []
    interrupted = False
    for i, values in enumerate(grid):
        overrides: dict[str, object] = dict(zip(names, values, strict=True))
        if duration is not None:
            overrides["duration"] = duration
            if load_scenario(file).warmup >= duration:
                overrides["warmup"] = duration / 10
        scenario = load_scenario(file, overrides)
        doc = run_scenario(
            scenario, seed=seed, replications=replications, topologies=topologies,
            providers=providers, workers=workers, scheduler=scheduler,
        )  # fmt: skip
        path = metric_path or default_metric(next(iter(doc["runs"].values())))
        points.append(
            {
                "params": dict(zip(names, values, strict=True)),
                "metric": {key: metric(run, path) for key, run in doc["runs"].items()},
                "document": doc,
            }
        )
        metric_path = path
        if progress:
            progress(i + 1, len(grid))
        if doc["interrupted"]:
            interrupted = True
            break
    return {
        "schema": SWEEP_SCHEMA,
        "file": str(file),
        "params": {n: list(params[n]) for n in names},
        "metric": metric_path,
        "points": points,
        "interrupted": interrupted,
    }
