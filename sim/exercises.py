"""Teaching exercises stored in scenario files, with answers the test suite checks.

Each exercise in a scenario's ``exercises:`` list has a question, a change
(dotted overrides), the topology and metric to look at, and an expectation:

    - question: Why does the search tier stay down after the slowdown ends?
      change: {topologies.request.services.aggregator.calls.0.retries: 0}
      topology: request
      metric: faults.0.after.success_rate
      expect: {baseline_below: 0.5, changed_above: 0.9}
      answer: Retries amplify the load ...

Bounds compare the mean over replications; ``ratio_below`` / ``ratio_above``
compare changed / baseline. Both runs share seeds (common random numbers).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from polybus.core.errors import ConfigError, Problem
from polybus.sim.loader import load_scenario
from polybus.sim.runner import run_scenario

CHECKS = (
    "baseline_below",
    "baseline_above",
    "changed_below",
    "changed_above",
    "ratio_below",
    "ratio_above",
)


@dataclass(frozen=True)
class Outcome:
    """An exercise's measured baseline and changed values and whether the expectation held."""

    question: str
    metric: str
    baseline: float
    changed: float
    passed: bool
    failures: tuple[str, ...]
    answer: str


def exercises(file: str | Path) -> list[dict[str, Any]]:
    """The exercises of a scenario file (possibly none)."""
    raw = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
    items = raw.get("exercises", []) if isinstance(raw, dict) else []
    return [dict(e) for e in items if isinstance(e, dict)]


def lookup(run: Mapping[str, Any], path: str) -> float:
    """The mean of the summary at `path` (dots; numbers index lists) in an aggregated run."""
    node: Any = run
    for key in path.split("."):
        node = node[int(key)] if isinstance(node, list) else node[key]
    value = node["mean"] if isinstance(node, Mapping) else node
    return float("nan") if value is None else float(value)


def _overrides(change: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, object]:
    """Dotted overrides; a numeric segment indexes a list (calls.0.retries): the list is replaced whole."""
    doc = copy.deepcopy(dict(raw))
    flat: dict[str, object] = {}
    for path, value in change.items():
        keys = path.split(".")
        if not any(k.isdigit() for k in keys):
            flat[path] = value
            continue
        target: Any = doc
        for k in keys[:-1]:
            target = target[int(k)] if k.isdigit() else target[k]
        target[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
        cut = next(i for i, k in enumerate(keys) if k.isdigit())
        node: Any = doc
        for k in keys[:cut]:
            node = node[k]
        flat[".".join(keys[:cut])] = node
    return flat


def check(file: str | Path, exercise: Mapping[str, Any], workers: int | None = None) -> Outcome:
    """Run the scenario before and after the exercise's change; compare the metric with the expectation."""
    problems = [
        Problem(k, None, "is required")
        for k in ("question", "change", "topology", "metric", "expect")
        if k not in exercise
    ]
    if problems:
        raise ConfigError(f"{file}: exercise", problems)
    base_overrides: dict[str, object] = {}
    for key in ("duration", "warmup"):
        if key in exercise:
            base_overrides[key] = exercise[key]
    raw = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
    changed_overrides = {**base_overrides, **_overrides(exercise["change"], raw)}
    reps = int(exercise.get("replications", 3))
    top = [exercise["topology"]]
    base = run_scenario(
        load_scenario(file, base_overrides), replications=reps, topologies=top, workers=workers
    )
    new = run_scenario(
        load_scenario(file, changed_overrides), replications=reps, topologies=top, workers=workers
    )
    b = lookup(base["runs"][exercise["topology"]], exercise["metric"])
    c = lookup(new["runs"][exercise["topology"]], exercise["metric"])
    failures = []
    expect: Mapping[str, float] = exercise["expect"]
    for name, bound in expect.items():
        value = {"baseline": b, "changed": c, "ratio": c / b if b else float("inf")}[
            name.rsplit("_", 1)[0]
        ]
        ok = value < bound if name.endswith("_below") else value > bound
        if name not in CHECKS or not ok:
            failures.append(f"{name} {bound}: got {value:.4g}")
    return Outcome(
        exercise["question"],
        exercise["metric"],
        b,
        c,
        not failures,
        tuple(failures),
        str(exercise.get("answer", "")),
    )
