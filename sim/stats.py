"""Confidence intervals over independent replications (Student t, no SciPy needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# two-sided 95% Student t critical values by degrees of freedom (1..30); normal beyond
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_critical(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom."""
    if df < 1:
        return math.inf
    return _T975[df - 1] if df <= len(_T975) else 1.96


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample sd, 95% CI and half-width of per-replication values (NaNs skipped)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(v)]
    n = len(xs)
    if n == 0:
        return {"mean": None, "sd": None, "ci95": [None, None], "halfwidth": None, "n": 0}
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    half = t_critical(n - 1) * sd / math.sqrt(n) if n > 1 else None
    ci = [mean - half, mean + half] if half is not None else [None, None]
    return {"mean": mean, "sd": sd, "ci95": ci, "halfwidth": half, "n": n}


def within(values: Sequence[float], target: float, k: float = 3.0, slack: float = 0.0) -> bool:
    """True when |mean - target| < k * sd / sqrt(n) + slack (the validation tests' tolerance)."""
    s = summarize(values)
    if s["n"] < 2:
        return False
    return abs(s["mean"] - target) < k * s["sd"] / math.sqrt(s["n"]) + slack
