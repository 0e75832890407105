"""Render a run document: rich tables for the terminal (at its width), strict JSON for files."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Console
from rich.table import Table

from polybus.sim.results import RunDocument, Series, Summary, to_json


def dumps(doc: Any) -> str:
    """Strict, indented JSON of a typed document (or of its JSON form)."""
    return json.dumps(to_json(doc), indent=2, allow_nan=False)


def _ms(stat: Summary) -> str:
    if stat.mean is None:
        return "-"
    text = f"{stat.mean * 1000:.1f}"
    return text if stat.halfwidth is None else f"{text} ±{stat.halfwidth * 1000:.1f}"


def _pct(stat: Summary) -> str:
    return "-" if stat.mean is None else f"{stat.mean * 100:.2f}%"


def _num(stat: Summary, fmt: str = "{:.1f}") -> str:
    return "-" if stat.mean is None else fmt.format(stat.mean)


def _age(stat: Summary) -> str:
    if stat.mean is None or stat.mean == 0:
        return "-"
    return f"{stat.mean:.1f} s"


def _table(title: str, columns: tuple[str, ...], left: int) -> Table:
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < left else "right", overflow="fold")
    return table


def print_document(doc: RunDocument, console: Console) -> None:
    """Overload warnings, then latency, services, backlog, broker, read models and faults (empty ones skipped)."""
    head = f"{doc.scenario}: seed {doc.seed}, {doc.completed_replications}/{doc.replications} replications"
    console.print(
        f"[bold]{head}[/bold], {doc.duration:.0f} s simulated each (warm-up {doc.warmup:.0f} s)"
    )
    for key, run in doc.runs.items():
        for flag in run.overload:
            console.print(f"[bold red]warning[/bold red] {key}: {flag.message}")
    lat = _table(
        "End-to-end latency per flow, ms (mean ± 95% CI half-width over replications)",
        ("run", "flow", "response mean", "p50", "p95", "p99", "p99.9", "completion mean",
         "completion p99", "throughput/s", "success", "timeouts", "errors", "not completed",
         "in progress at end", "oldest"),
        2,
    )  # fmt: skip
    for key, run in doc.runs.items():
        for flow, f in run.flows.items():
            r, c = f.latency, f.completion
            lat.add_row(
                key, flow, _ms(r.mean), _ms(r.p50), _ms(r.p95), _ms(r.p99), _ms(r.p999),
                _ms(c.mean), _ms(c.p99), _num(f.throughput), _pct(f.success_rate),
                _pct(f.timeout_rate), _pct(f.error_rate), _pct(f.not_completed_rate),
                _num(f.in_progress, "{:.0f}"), _age(f.oldest_in_progress),
            )  # fmt: skip
    console.print(lat)
    svc = _table(
        "Services: utilisation, offered load and Little's law (L vs lambda W)",
        ("run", "service", "utilisation", "offered / capacity", "L", "lambda/s", "W ms", "Wq ms",
         "|L - lambda W|/L", "status"),
        2,
    )  # fmt: skip
    for key, run in doc.runs.items():
        flagged = {o.where for o in run.overload if o.reason == "offered load"}
        for name, s in run.services.items():
            svc.add_row(
                key, name, _pct(s.utilisation), f"{_num(s.offered, '{:.2f}')} / {s.capacity:g}",
                _num(s.L, "{:.2f}"), _num(s.lambda_), _ms(s.W), _ms(s.Wq),
                _num(s.little_gap, "{:.4f}"), "OVERLOADED" if name in flagged else "ok",
            )  # fmt: skip
    console.print(svc)
    _hosts(doc, console)
    _backlog(doc, console)
    _broker(doc, console)
    _read_models(doc, console)
    _faults(doc, console)


def _hosts(doc: RunDocument, console: Console) -> None:
    if not any(run.hosts for run in doc.runs.values()):
        return
    table = _table(
        "Shared hosts: CPU utilisation and work in progress (processor sharing)",
        ("run", "host", "utilisation", "offered / CPUs", "work in progress", "status"),
        2,
    )
    for key, run in doc.runs.items():
        flagged = {o.where for o in run.overload if o.reason == "offered load"}
        for name, h in run.hosts.items():
            table.add_row(
                key, name, _pct(h.utilisation), f"{_num(h.offered, '{:.2f}')} / {h.cpus:g}",
                _num(h.in_progress, "{:.2f}"),
                "OVERLOADED" if f"host {name}" in flagged else "ok",
            )  # fmt: skip
    console.print(table)


def _points(series: Series) -> list[float]:
    return [math.nan if y is None else y for y in series.mean]


def _backlog(doc: RunDocument, console: Console) -> None:
    table = _table(
        "Backlog over time: flows in progress and undelivered events (mean over replications)",
        ("run", "series", "mean", "peak", "at t (s)", "end", "trend"),
        2,
    )
    for key, run in doc.runs.items():
        t = run.backlog.t
        named = {"flows in progress": run.backlog.in_flight}
        named |= {f"topic {n}": s for n, s in run.backlog.topics.items()}
        for i, (name, series) in enumerate(named.items()):
            ys = _points(series)
            finite = [y for y in ys if not math.isnan(y)]
            if not finite:
                continue
            peak = max(range(len(ys)), key=lambda j: -math.inf if math.isnan(ys[j]) else ys[j])
            trend = ""
            if i == 0:
                trend = "GROWING" if run.backlog.growing.value >= 0.5 else "bounded"
            table.add_row(
                key, name, f"{sum(finite) / len(finite):.1f}", f"{ys[peak]:.1f}", f"{t[peak]:.0f}",
                f"{ys[-1]:.1f}", trend,
            )  # fmt: skip
    console.print(table)


def _broker(doc: RunDocument, console: Console) -> None:
    rows = [(k, n, t, r) for k, r in doc.runs.items() for n, t in r.topics.items()]
    if not rows:
        return
    table = _table(
        "Broker: throughput, throttling, dead letters and monthly cost",
        ("run", "topic", "provider", "events/s", "publish requests/s", "throttled",
         "publish failed", "dead-lettered", "USD / month"),
        3,
    )  # fmt: skip
    for key, name, t, run in rows:
        table.add_row(
            key, name, run.provider, _num(t.events_per_s), _num(t.requests_per_s),
            _pct(t.throttle_rate), _num(t.publish_failed, "{:.0f}"), _num(t.dead_lettered, "{:.0f}"),
            f"{run.cost.topics.get(name, 0.0):,.2f}",
        )  # fmt: skip
    console.print(table)


def _read_models(doc: RunDocument, console: Console) -> None:
    rows = [(k, n, m) for k, r in doc.runs.items() for n, m in r.read_models.items()]
    if not rows:
        return
    grid = rows[0][2].stale_grid
    table = _table(
        "Consistency window: time until a write is visible; P(read t s after the write is stale)",
        ("run", "read model", "window mean ms", "p50", "p99", *[f"P(stale) @{g:g}s" for g in grid]),
        2,
    )
    for key, name, m in rows:
        w = m.window
        stale = [f"{p:.3f}" if not math.isnan(p) else "-" for p in _points(m.p_stale)]
        table.add_row(key, name, _ms(w.mean), _ms(w.p50), _ms(w.p99), *stale)
    console.print(table)


def _faults(doc: RunDocument, console: Console) -> None:
    rows = [(k, f) for k, r in doc.runs.items() for f in r.faults]
    if not rows:
        return
    table = _table(
        "Failure propagation: entry success and latency before / during / after each fault",
        ("run", "fault", "success before", "during", "after", "latency before ms", "during",
         "peak in flight", "drain time s"),
        2,
    )  # fmt: skip
    for key, f in rows:
        what = f"{f.service} {f.kind} {f.start:.0f}-{f.end:.0f}s"
        table.add_row(
            key, what, _pct(f.before.success_rate), _pct(f.during.success_rate),
            _pct(f.after.success_rate), _ms(f.before.latency_mean), _ms(f.during.latency_mean),
            _num(f.peak_backlog, "{:.0f}"), _num(f.drain_time),
        )  # fmt: skip
    console.print(table)
