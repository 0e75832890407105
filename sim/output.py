"""Render a run document: rich tables for the terminal, strict JSON for files."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table


def clean(value: Any) -> Any:
    """The document with NaN and infinities replaced by null (strict JSON)."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def dumps(doc: Mapping[str, Any]) -> str:
    """Strict, indented JSON of a run document."""
    return json.dumps(clean(doc), indent=2, allow_nan=False)


def _ms(stat: Mapping[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None or math.isnan(stat["mean"]):
        return "-"
    hw = stat.get("halfwidth")
    text = f"{stat['mean'] * 1000:.1f}"
    return text if hw is None or math.isnan(hw) else f"{text} ±{hw * 1000:.1f}"


def _pct(stat: Mapping[str, Any] | None) -> str:
    if not stat or stat.get("mean") is None or math.isnan(stat["mean"]):
        return "-"
    return f"{stat['mean'] * 100:.2f}%"


def _num(stat: Mapping[str, Any] | None, fmt: str = "{:.1f}") -> str:
    if not stat or stat.get("mean") is None or math.isnan(stat["mean"]):
        return "-"
    return fmt.format(stat["mean"])


def print_document(doc: Mapping[str, Any], console: Console) -> None:
    """Latency, services, broker, read models and faults, one table each (empty ones skipped)."""
    runs: Mapping[str, Any] = doc["runs"]
    head = f"{doc['scenario']}: seed {doc['seed']}, {doc['completed_replications']}/{doc['replications']} replications"
    console.print(
        f"[bold]{head}[/bold], {doc['duration']:.0f} s simulated each (warm-up {doc['warmup']:.0f} s)"
    )
    lat = Table(
        title="End-to-end latency per flow, ms (mean ± 95% CI half-width over replications)"
    )
    for col in ("run", "flow", "response mean", "p50", "p95", "p99", "p99.9", "completion mean", "completion p99", "throughput/s", "success", "timeouts", "errors"):  # fmt: skip
        lat.add_column(col, justify="left" if col in ("run", "flow") else "right")
    for key, run in runs.items():
        for flow, f in run["flows"].items():
            r, c = f["latency"], f["completion"]
            lat.add_row(
                key, flow, _ms(r["mean"]), _ms(r["p50"]), _ms(r["p95"]), _ms(r["p99"]), _ms(r["p999"]),
                _ms(c["mean"]), _ms(c["p99"]), _num(f["throughput"]), _pct(f["success_rate"]),
                _pct(f["timeout_rate"]), _pct(f["error_rate"]),
            )  # fmt: skip
    console.print(lat)
    svc = Table(title="Services: utilisation and Little's law (L vs lambda W)")
    for col in (
        "run",
        "service",
        "utilisation",
        "L",
        "lambda/s",
        "W ms",
        "Wq ms",
        "|L - lambda W|/L",
    ):
        svc.add_column(col, justify="left" if col in ("run", "service") else "right")
    for key, run in runs.items():
        for name, s in run["services"].items():
            svc.add_row(
                key, name, _pct(s["utilisation"]), _num(s["L"], "{:.2f}"), _num(s["lambda"]),
                _ms(s["W"]), _ms(s["Wq"]), _num(s["little_gap"], "{:.4f}"),
            )  # fmt: skip
    console.print(svc)
    _backlog(runs, console)
    _broker(runs, console)
    _read_models(runs, console)
    _faults(runs, console)


def _backlog(runs: Mapping[str, Any], console: Console) -> None:
    table = Table(
        title="Backlog over time: flows in progress and undelivered events (mean over replications)"
    )
    for col in ("run", "series", "mean", "peak", "at t (s)", "end"):
        table.add_column(col, justify="left" if col in ("run", "series") else "right")
    for key, run in runs.items():
        t = run["backlog"]["t"]
        named = {"flows in progress": run["backlog"]["in_flight"]}
        named |= {f"topic {n}": s for n, s in run["backlog"]["topics"].items()}
        for name, series in named.items():
            ys = [y if y is not None else math.nan for y in series["mean"]]
            if not ys:
                continue
            peak = max(range(len(ys)), key=lambda i: -math.inf if math.isnan(ys[i]) else ys[i])
            mean = sum(y for y in ys if not math.isnan(y)) / max(
                1, sum(not math.isnan(y) for y in ys)
            )
            table.add_row(
                key, name, f"{mean:.1f}", f"{ys[peak]:.1f}", f"{t[peak]:.0f}", f"{ys[-1]:.1f}"
            )
    console.print(table)


def _broker(runs: Mapping[str, Any], console: Console) -> None:
    rows = [(k, n, t, r) for k, r in runs.items() for n, t in r["topics"].items()]
    if not rows:
        return
    table = Table(title="Broker: throughput, throttling, dead letters and monthly cost")
    for col in ("run", "topic", "provider", "events/s", "publish requests/s", "throttled", "publish failed", "dead-lettered", "USD / month"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("run", "topic", "provider") else "right")
    for key, name, t, run in rows:
        table.add_row(
            key, name, run["provider"], _num(t["events_per_s"]), _num(t["requests_per_s"]),
            _pct(t["throttle_rate"]), _num(t["publish_failed"], "{:.0f}"), _num(t["dead_lettered"], "{:.0f}"),
            f"{run['cost']['topics'].get(name, 0.0):,.2f}",
        )  # fmt: skip
    console.print(table)


def _read_models(runs: Mapping[str, Any], console: Console) -> None:
    rows = [(k, n, m) for k, r in runs.items() for n, m in r["read_models"].items()]
    if not rows:
        return
    grid = rows[0][2]["stale_grid"]
    table = Table(
        title="Consistency window: time until a write is visible; P(read t s after the write is stale)"
    )
    for col in (
        "run",
        "read model",
        "window mean ms",
        "p50",
        "p99",
        *[f"P(stale) @{g}s" for g in grid],
    ):
        table.add_column(col, justify="left" if col in ("run", "read model") else "right")
    for key, name, m in rows:
        w = m["window"]
        stale = [
            f"{p:.3f}" if p is not None and not math.isnan(p) else "-" for p in m["p_stale"]["mean"]
        ]
        table.add_row(key, name, _ms(w["mean"]), _ms(w["p50"]), _ms(w["p99"]), *stale)
    console.print(table)


def _faults(runs: Mapping[str, Any], console: Console) -> None:
    rows = [(k, f) for k, r in runs.items() for f in r["faults"]]
    if not rows:
        return
    table = Table(
        title="Failure propagation: entry success and latency before / during / after each fault"
    )
    for col in ("run", "fault", "success before", "during", "after", "latency before ms", "during", "peak in flight", "drain time s"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("run", "fault") else "right")
    for key, f in rows:
        what = f"{f['service']} {f['kind']} {f['start']:.0f}-{f['end']:.0f}s"
        table.add_row(
            key, what, _pct(f["before"]["success_rate"]), _pct(f["during"]["success_rate"]),
            _pct(f["after"]["success_rate"]), _ms(f["before"]["latency_mean"]), _ms(f["during"]["latency_mean"]),
            _num(f["peak_backlog"], "{:.0f}"), _num(f["drain_time"]),
        )  # fmt: skip
    console.print(table)
