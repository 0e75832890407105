"""Service-time and latency distributions, parsed from topology YAML.

Every distribution draws vectors from a NumPy generator (`sample`) and knows
its first two moments, which the closed forms in `sim.theory` need. A bare
number in YAML means a deterministic value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from polybus.core.errors import Problem

Z99 = 2.3263478740408408  # standard normal 0.99 quantile, for lognormal fits from p50/p99


class Distribution(Protocol):
    """A non-negative random variable the harness can sample in blocks."""

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` independent draws as a float64 array."""
        ...

    @property
    def mean(self) -> float:
        """E[X]."""
        ...

    @property
    def second_moment(self) -> float:
        """E[X^2] (Pollaczek-Khinchine needs it)."""
        ...


@dataclass(frozen=True)
class Exponential:
    """Exponential with the given mean (memoryless: the M in M/M/1)."""

    mean: float

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` draws."""
        return rng.exponential(self.mean, n)

    @property
    def second_moment(self) -> float:
        """E[X^2] = 2 mean^2."""
        return 2.0 * self.mean**2


@dataclass(frozen=True)
class Deterministic:
    """Always the same value (the D in M/D/1)."""

    value: float

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` copies of the value (consumes no randomness)."""
        return np.full(n, self.value)

    @property
    def mean(self) -> float:
        """The value."""
        return self.value

    @property
    def second_moment(self) -> float:
        """value^2."""
        return self.value**2


@dataclass(frozen=True)
class LogNormal:
    """Log-normal with log-scale mean `mu` and log-scale sd `sigma` (heavy-ish tail)."""

    mu: float
    sigma: float

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` draws."""
        return rng.lognormal(self.mu, self.sigma, n)

    @property
    def mean(self) -> float:
        """exp(mu + sigma^2/2)."""
        return math.exp(self.mu + self.sigma**2 / 2)

    @property
    def second_moment(self) -> float:
        """exp(2mu + 2sigma^2)."""
        return math.exp(2 * self.mu + 2 * self.sigma**2)


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high]."""

    low: float
    high: float

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` draws."""
        return rng.uniform(self.low, self.high, n)

    @property
    def mean(self) -> float:
        """Midpoint."""
        return (self.low + self.high) / 2

    @property
    def second_moment(self) -> float:
        """(a^2 + ab + b^2) / 3."""
        return (self.low**2 + self.low * self.high + self.high**2) / 3


@dataclass(frozen=True)
class Empirical:
    """Resamples measured values uniformly (e.g. latencies captured from a real system)."""

    samples: tuple[float, ...]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` draws with replacement."""
        return np.asarray(self.samples)[rng.integers(0, len(self.samples), n)]

    @property
    def mean(self) -> float:
        """Sample mean."""
        return float(np.mean(self.samples))

    @property
    def second_moment(self) -> float:
        """Sample mean of squares."""
        return float(np.mean(np.square(self.samples)))


@dataclass(frozen=True)
class Mixture:
    """With probability weights[i], draw from components[i] (e.g. 1% slow responses)."""

    weights: tuple[float, ...]
    components: tuple[Distribution, ...] = field(default=())

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` draws: a component index per draw, then that component's value."""
        which = rng.choice(len(self.weights), size=n, p=np.asarray(self.weights))
        out = np.empty(n)
        for i, comp in enumerate(self.components):
            mask = which == i
            out[mask] = comp.sample(rng, int(mask.sum()))
        return out

    @property
    def mean(self) -> float:
        """Weighted mean."""
        return sum(w * c.mean for w, c in zip(self.weights, self.components, strict=True))

    @property
    def second_moment(self) -> float:
        """Weighted second moment."""
        return sum(w * c.second_moment for w, c in zip(self.weights, self.components, strict=True))


KINDS = ("exponential", "deterministic", "lognormal", "uniform", "empirical", "mixture")
KEYS = {
    "exponential": ("mean", "rate"),
    "deterministic": ("value",),
    "lognormal": ("median", "sigma", "p99", "mean", "sd"),
    "uniform": ("low", "high"),
    "empirical": ("samples",),
    "mixture": ("components",),
}


def _num(
    spec: Mapping[str, Any], key: str, path: str, problems: list[Problem], *, positive: bool = False
) -> float | None:
    """The number at `key`, or None after recording one problem (callers then skip dependent checks)."""
    value = spec.get(key)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value <= 0):  # type: ignore[operator]
        rule = "must be a number > 0" if positive else "must be a number >= 0"
        if value is None:
            if _typo_of(key, spec):
                return None  # the unknown-key problem already names it
            rule = f"is required ({rule[8:]})"
        problems.append(Problem(f"{path}.{key}", value, rule))
        return None
    return float(value)  # type: ignore[arg-type]


def _typo_of(key: str, spec: Mapping[str, Any]) -> bool:
    """Whether a key of `spec` looks like a misspelling of the missing `key` (reported once, as unknown)."""
    import difflib

    return bool(
        difflib.get_close_matches(key, [str(k) for k in spec if k != key], n=1, cutoff=0.75)
    )


def _unknown(
    spec: Mapping[str, Any], path: str, allowed: Sequence[str], problems: list[Problem]
) -> None:
    from polybus.core.config import unknown_key_rule

    for key, value in spec.items():
        if key not in allowed:
            problems.append(Problem(f"{path}.{key}", value, unknown_key_rule(str(key), allowed)))


FALLBACK = Deterministic(0.0)


def parse_distribution(spec: object, path: str, problems: list[Problem]) -> Distribution:
    """Build a distribution from YAML; append one Problem per error (path names the YAML key).

    Forms: a number (deterministic seconds); {dist: exponential, mean|rate};
    {dist: deterministic, value}; {dist: lognormal, median, sigma | p99} or
    {dist: lognormal, mean, sd}; {dist: uniform, low, high};
    {dist: empirical, samples: [...]}; {dist: mixture, components: [{weight, ...}]}.
    Unknown keys are problems with a did-you-mean.
    """
    if (
        isinstance(spec, int | float)
        and not isinstance(spec, bool)
        and math.isfinite(spec)
        and spec >= 0
    ):
        return Deterministic(float(spec))
    if not isinstance(spec, Mapping):
        problems.append(
            Problem(path, spec, "must be a number of seconds >= 0 or a mapping with 'dist'")
        )
        return FALLBACK
    kind = spec.get("dist")
    if kind not in KINDS:
        problems.append(Problem(f"{path}.dist", kind, f"must be one of {', '.join(KINDS)}"))
        return FALLBACK
    _unknown(spec, path, ("dist", *KEYS[kind]), problems)
    if kind == "exponential":
        if "rate" in spec:
            rate = _num(spec, "rate", path, problems, positive=True)
            return FALLBACK if rate is None else Exponential(1.0 / rate)
        mean = _num(spec, "mean", path, problems)
        return FALLBACK if mean is None else Exponential(mean)
    if kind == "deterministic":
        value = _num(spec, "value", path, problems)
        return FALLBACK if value is None else Deterministic(value)
    if kind == "lognormal":
        return _lognormal(spec, path, problems)
    if kind == "uniform":
        low, high = _num(spec, "low", path, problems), _num(spec, "high", path, problems)
        if low is None or high is None:
            return FALLBACK
        if high < low:
            problems.append(Problem(f"{path}.high", high, f"must be >= low ({low:g})"))
        return Uniform(low, high)
    if kind == "empirical":
        samples = spec.get("samples")
        ok = isinstance(samples, Sequence) and not isinstance(samples, str) and len(samples) > 0
        if not ok or not all(
            isinstance(s, int | float) and not isinstance(s, bool) and s >= 0
            for s in samples  # type: ignore[union-attr]
        ):
            problems.append(
                Problem(f"{path}.samples", samples, "must be a non-empty list of numbers >= 0")
            )
            return FALLBACK
        return Empirical(tuple(float(s) for s in samples))  # type: ignore[union-attr]
    return _mixture(spec, path, problems)


def _lognormal(spec: Mapping[str, Any], path: str, problems: list[Problem]) -> Distribution:
    if "mean" in spec:
        mean = _num(spec, "mean", path, problems, positive=True)
        sd = _num(spec, "sd", path, problems)
        if mean is None or sd is None:
            return FALLBACK
        sigma2 = math.log1p((sd / mean) ** 2)
        return LogNormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
    median = _num(spec, "median", path, problems, positive=True)
    if "p99" in spec:
        p99 = _num(spec, "p99", path, problems, positive=True)
        if median is None or p99 is None:
            return FALLBACK
        if p99 < median:
            problems.append(Problem(f"{path}.p99", p99, f"must be >= median ({median:g})"))
            return Deterministic(median)
        return LogNormal(math.log(median), math.log(p99 / median) / Z99)
    sigma = _num(spec, "sigma", path, problems)
    if median is None or sigma is None:
        return FALLBACK
    return LogNormal(math.log(median), sigma)


def _mixture(spec: Mapping[str, Any], path: str, problems: list[Problem]) -> Distribution:
    comps = spec.get("components")
    if not isinstance(comps, Sequence) or isinstance(comps, str) or not comps:
        problems.append(Problem(f"{path}.components", comps, "must be a non-empty list"))
        return FALLBACK
    weights: list[float] = []
    parts: list[Distribution] = []
    failed = False
    for i, comp in enumerate(comps):
        where = f"{path}.components[{i}]"
        if not isinstance(comp, Mapping):
            problems.append(Problem(where, comp, "must be a mapping with 'weight' and 'dist'"))
            failed = True
            continue
        weight = _num(comp, "weight", where, problems)
        failed |= weight is None
        weights.append(weight or 0.0)
        parts.append(
            parse_distribution({k: v for k, v in comp.items() if k != "weight"}, where, problems)
        )
    total = sum(weights)
    if failed:
        return FALLBACK
    if not math.isclose(total, 1.0, abs_tol=1e-9):
        problems.append(Problem(f"{path}.components", total, "weights must sum to 1"))
        return FALLBACK
    return Mixture(tuple(weights), tuple(parts))
