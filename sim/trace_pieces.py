"""The timed pieces of traced flows, and the drift they share (for `sim.from_traces`).

A flow's pieces are what the scenario model draws: a visit's work and settle,
a publish, a delivery. `own_seconds` gives each its own time (its duration, or
on a shared host its CPU demand); `flow_speeds` fits the host's drift
(`sim.speed`) from them and says how much of it to take out of each trace.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polybus.core.tracing.records import SpanRecord
from polybus.sim.host import demands
from polybus.sim.speed import fit_speed
from polybus.sim.topology import Speed


def busy_at(visits: Sequence[SpanRecord]) -> Any:
    """A function: how many of `visits` were in progress at time t (ns)."""
    starts = sorted(v.start_ns for v in visits)
    ends = sorted(v.end_ns for v in visits)
    return lambda t: bisect_right(starts, t) - bisect_right(ends, t)


def most_concurrent(spans: Sequence[SpanRecord]) -> int:
    edges = sorted([(s.start_ns, 1) for s in spans] + [(s.end_ns, -1) for s in spans])
    best = level = 0
    for _, step in edges:
        level += step
        best = max(best, level)
    return max(1, best)


@dataclass(frozen=True)
class Piece:
    """One timed piece of a flow the model draws: a visit's work or settle, a publish, a delivery."""

    trace_id: str
    kind: str  # work, settle, publish, deliver
    what: str  # the span's name: which service or topic
    start_ns: int
    end_ns: int


def flow_pieces(
    visits: dict[str, list[SpanRecord]], children: dict[str, list[SpanRecord]],
    deliveries: Sequence[tuple[str, SpanRecord, SpanRecord]], workers: dict[str, int],
) -> dict[tuple[str, str], Piece]:  # fmt: skip
    """The pieces of every flow, keyed (kind, span id).

    A visit's ``work`` (to its first publish) and ``settle`` (after its last
    publish or call), each ``publish`` (PRODUCER span) and each ``deliver``
    (producer end to consumer start) that found one of its service's
    `workers` free (a wait for a busy worker is queueing, which the model
    adds itself).
    """
    out: dict[tuple[str, str], Piece] = {}
    for mine in visits.values():
        for v in mine:
            acts = [c for c in children[v.span_id] if c.kind in ("PRODUCER", "CLIENT")]
            cut = min((c.start_ns for c in acts if c.kind == "PRODUCER"), default=v.end_ns)
            out["work", v.span_id] = Piece(
                v.trace_id, "work", v.name, v.start_ns, max(v.start_ns, cut)
            )
            if acts:
                last = min(v.end_ns, max(c.end_ns for c in acts))
                out["settle", v.span_id] = Piece(v.trace_id, "settle", v.name, last, v.end_ns)
            for c in acts:
                if c.kind == "PRODUCER":
                    out["publish", c.span_id] = Piece(
                        c.trace_id, "publish", c.name, c.start_ns, max(c.start_ns, c.end_ns)
                    )
    busy = {name: busy_at(mine) for name, mine in visits.items()}
    for service, producer, consumer in deliveries:
        if busy[service](producer.end_ns) < workers[service]:
            end = max(producer.end_ns, consumer.start_ns)
            out["deliver", consumer.span_id] = Piece(
                consumer.trace_id, "deliver", consumer.name, producer.end_ns, end
            )
    return out


def own_seconds(
    pieces: dict[tuple[str, str], Piece], shared: bool, bus_work: bool
) -> dict[tuple[str, str], float]:
    """Each piece's own time, s: its duration, or on a shared host its CPU demand.

    On a host of one CPU shared by every piece (processor sharing), a piece
    in progress with n - 1 others gets 1/n of it: its demand is the integral
    of 1/n(t) over it (`sim.host.demands`), what the host model turns back
    into the durations seen. Publishes and deliveries are host work only
    with `bus_work` (an in-process bus); else they keep their durations.
    """
    out = {k: (p.end_ns - p.start_ns) / 1e9 for k, p in pieces.items()}
    if shared:
        keys = [k for k, p in pieces.items() if bus_work or p.kind in ("work", "settle")]
        work = demands([(pieces[k].start_ns, pieces[k].end_ns) for k in keys])
        out.update(zip(keys, work, strict=True))
    return out


def flow_speeds(
    pieces: dict[tuple[str, str], Piece], seconds: dict[tuple[str, str], float]
) -> tuple[Speed | None, dict[str, float]]:
    """The host's drift (`sim.speed`) the flows show, and each trace's deflator exp(-factor).

    A piece's log ratio is log(its time / the median of its kind's); a flow's
    factor is the mean of its pieces' ratios. The deflator takes the shrunken
    factor (sigma**2 / (sigma**2 + piece variance / pieces)) out of a trace's
    samples, so the fitted distributions are the pieces' own and the speed
    is not counted twice.
    """
    logs: dict[tuple[str, str], list[float]] = defaultdict(list)
    keyed: list[tuple[Piece, tuple[str, str], float]] = []
    for k, piece in pieces.items():
        if seconds[k] <= 0:
            continue
        kind = (piece.kind, piece.what)
        value = math.log(seconds[k])
        logs[kind].append(value)
        keyed.append((piece, kind, value))
    medians = {k: float(np.median(v)) for k, v in logs.items()}
    per: dict[str, list[float]] = defaultdict(list)
    starts: dict[str, int] = {}
    for piece, kind, value in keyed:
        per[piece.trace_id].append(value - medians[kind])
        starts[piece.trace_id] = min(starts.get(piece.trace_id, piece.start_ns), piece.start_ns)
    flows = [t for t, rs in per.items() if len(rs) >= 2]
    factors = {t: float(np.mean(per[t])) for t in flows}
    within = sum(sum((r - factors[t]) ** 2 for r in per[t]) for t in flows)
    dof = sum(len(per[t]) - 1 for t in flows)
    hop_var = within / dof if dof else 0.0
    t0 = min(starts.values(), default=0)
    speed = fit_speed(
        [(starts[t] - t0) / 1e9 for t in flows], [factors[t] for t in flows],
        [len(per[t]) for t in flows], hop_var,
    )  # fmt: skip
    if speed is None:
        return None, {}
    sigma2 = speed.sigma**2
    mean = float(np.mean(list(factors.values())))
    deflate = {
        t: math.exp(-(factors[t] - mean) * sigma2 / (sigma2 + hop_var / len(per[t])))
        for t in flows
    }  # fmt: skip
    return speed, deflate
