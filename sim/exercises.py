"""Teaching exercises stored in scenario files, with answers measured, not written down.

Each exercise in a scenario's ``exercises:`` list has a question, a change
(dotted overrides), the topology and metric to look at, bounds the effect
must meet, and an answer whose numbers are filled in from the measurement:

    - question: Billing loses a worker. What happens to the request p99?
      change: {topologies.request.services.billing.workers: 3}
      topology: request
      metric: flows.checkout.latency.p99
      expect: {ratio_above: 1.3}
      answer: The p99 goes from {baseline} to {changed} ({delta}) ...

Bounds compare the mean over replications; ``ratio_below`` / ``ratio_above``
compare changed / baseline. Both runs share seeds (common random numbers).
Placeholders: ``{baseline}``, ``{changed}`` (with units), ``{delta}``
(relative change, or points for percentages) and ``{ratio}`` (changed /
baseline, e.g. 1.37x).
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from polybus.core.errors import ConfigError, Problem
from polybus.sim.loader import load_scenario, parse_scenario
from polybus.sim.lookup import check_metric, delta, show, summary_at, transition, unit_of
from polybus.sim.runner import run_scenario
from polybus.sim.schema import CHECKS
from polybus.sim.topology import Exercise

PLACEHOLDERS = ("baseline", "changed", "delta", "ratio")


@dataclass(frozen=True)
class Outcome:
    """An exercise's measured baseline and changed values, whether the expectation held, and the filled-in answer."""

    exercise: Exercise
    baseline: float
    changed: float
    passed: bool
    failures: tuple[str, ...]
    answer: str

    @property
    def question(self) -> str:
        """The exercise's question."""
        return self.exercise.question

    @property
    def metric(self) -> str:
        """The metric path the exercise watches."""
        return self.exercise.metric

    @property
    def unit(self) -> str:
        """How the metric is shown: 's', '%', '/s' or ''."""
        return self.exercise.unit or unit_of(self.exercise.metric)

    def reveal(self) -> str:
        """``p99 253 -> 347 ms (+37%), expected > +30%``."""
        label = self.metric.rsplit(".", 1)[-1]
        return f"{transition(label, self.baseline, self.changed, self.unit)}, expected {expectation(self.exercise, self.unit)}"


def exercises(file: str | Path) -> tuple[Exercise, ...]:
    """The exercises of a scenario file (possibly none), validated with the scenario."""
    return load_scenario(file).exercises


def expectation(exercise: Exercise, unit: str) -> str:
    """The bounds in words: ``> +30%``, ``baseline < 50%, changed > 90%``."""
    parts = []
    for name, bound in exercise.expect.items():
        which, side = name.rsplit("_", 1)
        op = "<" if side == "below" else ">"
        if which == "ratio":
            parts.append(f"{op} {(bound - 1) * 100:+.0f}%")
        else:
            parts.append(f"{which} {op} {show(bound, unit)}")
    return ", ".join(parts)


def fill(exercise: Exercise, baseline: float, changed: float) -> str:
    """The answer with the measured numbers filled in."""
    unit = exercise.unit or unit_of(exercise.metric)
    ratio = changed / baseline if baseline else math.inf
    values = {
        "baseline": show(baseline, unit),
        "changed": show(changed, unit),
        "delta": delta(baseline, changed, unit),
        "ratio": f"{ratio:.2g}x" if math.isfinite(ratio) else "n/a",
    }
    return exercise.answer.format_map(values)


def template_problems(exercise: Exercise, where: str) -> list[Problem]:
    """Placeholders an answer may not use (anything but baseline, changed, delta, ratio)."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(exercise.answer) if f is not None]
    except ValueError as exc:
        return [Problem(f"{where}.answer", exercise.answer, f"is not a valid template: {exc}")]
    return [
        Problem(
            f"{where}.answer",
            "{" + n + "}",
            f"unknown placeholder; use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}",
        )
        for n in names
        if n not in PLACEHOLDERS
    ]


def _pick(file: str | Path, exercise: Exercise | Mapping[str, object] | int) -> Exercise:
    if isinstance(exercise, Exercise):
        return exercise
    if isinstance(exercise, int):
        items = exercises(file)
        if not 1 <= exercise <= len(items):
            raise ConfigError(str(file), [Problem("--only", exercise, f"must be 1..{len(items)}")])
        return items[exercise - 1]
    return parse_scenario(
        {**load_scenario(file).raw, "exercises": [dict(exercise)]}, str(file)
    ).exercises[0]


def validate(file: str | Path) -> tuple[Exercise, ...]:
    """Every exercise's metric, change and answer template checked without simulating; ConfigError lists the problems."""
    scenario = load_scenario(file)
    problems: list[Problem] = []
    for i, ex in enumerate(scenario.exercises):
        where = f"exercises[{i}]"
        problems += template_problems(ex, where)
        try:
            changed = load_scenario(file, {**_window(ex), **ex.change})
            check_metric(changed, ex.topology, ex.metric)
        except ConfigError as err:
            problems += [Problem(f"{where}: {p.field}", p.value, p.rule) for p in err.problems]
    if problems:
        raise ConfigError(str(file), problems)
    return scenario.exercises


def _window(ex: Exercise) -> dict[str, object]:
    out: dict[str, object] = {}
    if ex.duration is not None:
        out["duration"] = ex.duration
    if ex.warmup is not None:
        out["warmup"] = ex.warmup
    return out


def check(
    file: str | Path, exercise: Exercise | Mapping[str, object] | int, workers: int | None = None
) -> Outcome:
    """Run the scenario before and after the exercise's change (same seeds); compare the metric with the bounds."""
    ex = _pick(file, exercise)
    base_sc = load_scenario(file, _window(ex))
    new_sc = load_scenario(file, {**_window(ex), **ex.change})
    problems = template_problems(ex, "exercise")
    if problems:
        raise ConfigError(str(file), problems)
    check_metric(base_sc, ex.topology, ex.metric)
    top = [ex.topology]
    base = run_scenario(base_sc, replications=ex.replications, topologies=top, workers=workers)
    new = run_scenario(new_sc, replications=ex.replications, topologies=top, workers=workers)
    b = summary_at(base.runs[ex.topology], ex.metric).value
    c = summary_at(new.runs[ex.topology], ex.metric).value
    failures = []
    for name, bound in ex.expect.items():
        which = name.rsplit("_", 1)[0]
        value = {"baseline": b, "changed": c, "ratio": c / b if b else math.inf}[which]
        ok = value < bound if name.endswith("_below") else value > bound
        if name not in CHECKS or not ok:
            failures.append(f"{name} {bound:g}: got {value:.4g}")
    return Outcome(ex, b, c, not failures, tuple(failures), fill(ex, b, c))
