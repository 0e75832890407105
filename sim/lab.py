"""`polybus sim lab`: a local page to try changes to a scenario and see the charts move.

The page (sim.lab_page) draws each topology as boxes and arrows, offers
sliders for the workload rate and the workers of each service, a provider
and a fault, and re-runs a short simulation on every change (the fast path
where it applies); the charts and tables are the report's (sim.report). In
exercise mode the student commits a prediction before the measured answer
is shown: the server refuses to answer without one. Standard library only
(http.server); one process, runs serialised by a lock.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml

from polybus.core.errors import ConfigError, PolybusError, Problem
from polybus.core.page_server import PageHandler, PageServer
from polybus.sim import narrative
from polybus.sim.lab_page import PAGE
from polybus.sim.report import figures, tables
from polybus.sim.topology import Scenario, Topology

MAX_ARRIVALS = 10_000  # per replication of a SimPy run: keeps one lab run within a few seconds
SIMPY_SECONDS = 60.0  # at most this much simulated time per SimPy replication
FAST_SECONDS = 120.0  # and per fast-path replication
DIRECTIONS = ("up", "same", "down")
SAME_BAND = 0.05  # a change within ±5% reads as "about the same"


def simulate(
    file: str | Path, overrides: Mapping[str, object], provider: str | None, replications: int
) -> dict[str, Any]:
    """Load the scenario with `overrides` and run it: the lab's one call into the simulator."""
    from polybus.sim.loader import load_scenario
    from polybus.sim.runner import run_scenario

    scenario = load_scenario(file, overrides)
    doc = run_scenario(
        scenario,
        replications=replications,
        providers=[provider] if provider else None,
        workers=1,  # the lab serves from threads: no process pool forked from them
    )
    return dict(narrative.as_document(doc))


def check_exercise(file: str | Path, exercise: Mapping[str, Any]) -> tuple[float, float, bool]:
    """Run one exercise (baseline and changed, same seeds): the lab's one call into sim.exercises."""
    from polybus.sim.exercises import check

    outcome = check(file, exercise, workers=1)
    return outcome.baseline, outcome.changed, outcome.passed


@dataclass(frozen=True)
class Settings:
    """What the student chose: a load factor per flow, workers per service, a provider and a fault."""

    load: Mapping[str, float] = field(default_factory=dict)
    workers: Mapping[str, int] = field(default_factory=dict)
    provider: str = ""
    fault: str = "none"

    @classmethod
    def from_json(cls, data: object) -> Settings:
        """Parse the page's request body; a ConfigError names every bad field."""
        if not isinstance(data, Mapping):
            raise ConfigError("lab settings", [Problem("<body>", data, "must be an object")])
        problems: list[Problem] = []
        load = data.get("load", {})
        workers = data.get("workers", {})
        if not isinstance(load, Mapping) or not all(
            isinstance(v, int | float) and 0 < v <= 100 for v in load.values()
        ):
            problems.append(Problem("load", load, "must map flows to factors in (0, 100]"))
            load = {}
        if not isinstance(workers, Mapping) or not all(
            isinstance(v, int) and v >= 1 for v in workers.values()
        ):
            problems.append(Problem("workers", workers, "must map services to integers >= 1"))
            workers = {}
        if problems:
            raise ConfigError("lab settings", problems)
        return cls(
            {str(k): float(v) for k, v in load.items()},
            {str(k): int(v) for k, v in workers.items()},
            str(data.get("provider") or ""),
            str(data.get("fault") or "none"),
        )


@dataclass(frozen=True)
class FaultChoice:
    """One entry of the fault menu: an id, a label, and the faults list it puts in the scenario."""

    id: str
    label: str
    faults: tuple[Mapping[str, Any], ...]


class Lab:
    """One scenario file and what the page may change in it."""

    def __init__(
        self, file: str | Path, duration: float | None = None, replications: int = 2
    ) -> None:
        from polybus.sim.loader import load_scenario
        from polybus.sim.profiles import providers

        self.file = str(file)
        self.scenario: Scenario = load_scenario(file)
        self.raw: Mapping[str, Any] = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
        self.replications = replications
        self.providers = providers()
        self.duration = duration or self._short_duration()
        self.warmup = min(self.scenario.warmup, self.duration / 5)
        self._lock = threading.Lock()
        self.predictions: list[dict[str, Any]] = []  # what students committed, in order

    def _short_duration(self) -> float:
        """A few seconds of wall time: up to 120 simulated s on the fast path, 20-60 s on SimPy by rate."""
        from polybus.sim.runner import engine_for

        rate = sum(w.mean_rate for w in self.scenario.workloads) or 1.0
        fast = all(engine_for(self.scenario, t) == "fast" for t in self.scenario.topologies)
        cap = FAST_SECONDS if fast else min(SIMPY_SECONDS, max(20.0, MAX_ARRIVALS / rate))
        return float(min(self.scenario.duration, cap))

    def services(self) -> dict[str, int]:
        """Each service name with its workers in the first topology that has it."""
        out: dict[str, int] = {}
        for top in self.scenario.topologies.values():
            for name, svc in top.services.items():
                out.setdefault(name, svc.workers)
        return out

    def fault_choices(self) -> list[FaultChoice]:
        """No fault, the scenario's own faults (rescaled to the lab's run), and an outage or x3 slowdown per service."""
        start, end = round(self.duration * 0.4, 1), round(self.duration * 0.6, 1)
        out = [FaultChoice("none", "no fault", ())]
        own = self.raw.get("faults") or []
        if own:
            k = self.duration / self.scenario.duration
            scaled = tuple(
                {**f, "start": round(f["start"] * k, 1), "end": round(f["end"] * k, 1)} for f in own
            )
            out.append(FaultChoice("scenario", "the scenario's own faults (rescaled)", scaled))
        for name in self.services():
            window = f"{start:g}-{end:g} s"
            out.append(FaultChoice(f"outage:{name}", f"{name} outage, {window}",
                                   ({"service": name, "outage": True, "start": start, "end": end},)))  # fmt: skip
            out.append(FaultChoice(f"slowdown:{name}", f"{name} 3x slower, {window}",
                                   ({"service": name, "slowdown": 3, "start": start, "end": end},)))  # fmt: skip
        return out

    def overrides(self, settings: Settings) -> dict[str, object]:
        """The dotted overrides that apply `settings` to the scenario file."""
        out: dict[str, object] = {"duration": self.duration, "warmup": self.warmup}
        workload = self.raw.get("workload") or {}
        for flow, factor in settings.load.items():
            spec = workload.get(flow)
            if not isinstance(spec, Mapping):
                raise ConfigError(self.file, [Problem(f"workload.{flow}", flow, "is not a flow")])
            if "rate" in spec:
                out[f"workload.{flow}.rate"] = float(spec["rate"]) * factor
            else:
                out[f"workload.{flow}.devices"] = max(1, round(int(spec["devices"]) * factor))
        known = self.services()
        for name, n in settings.workers.items():
            if name not in known:
                raise ConfigError(self.file, [Problem("workers", name, "is not a service")])
            for top, topology in self.scenario.topologies.items():
                if name in topology.services:
                    out[f"topologies.{top}.services.{name}.workers"] = n
        choices = {c.id: c for c in self.fault_choices()}
        if settings.fault not in choices:
            raise ConfigError(self.file, [Problem("fault", settings.fault, "is not on the menu")])
        out["faults"] = [dict(f) for f in choices[settings.fault].faults]
        return out

    def describe(self) -> dict[str, Any]:
        """What the page needs to draw its controls: flows, services, providers, faults, exercises (no answers)."""
        text = narrative.scenario_text({"file": self.file})
        flows = [
            {"flow": w.flow, "rate": w.mean_rate, "pattern": w.pattern}
            for w in self.scenario.workloads
        ]
        return {
            "scenario": self.scenario.name,
            "description": text.description,
            "lesson": text.lesson,
            "duration": self.duration,
            "replications": self.replications,
            "flows": flows,
            "services": [
                {"service": n, "workers": w, "max": max(2 * w, w + 4)}
                for n, w in self.services().items()
            ],
            "providers": list(self.providers),
            "provider": self.scenario.provider,
            "faults": [{"id": c.id, "label": c.label} for c in self.fault_choices()],
            "fault": "scenario" if self.raw.get("faults") else "none",
            "diagrams": self.diagrams({}),
            "exercises": [
                {
                    "question": str(e.get("question", "")),
                    "change": e.get("change", {}),
                    "topology": e.get("topology", ""),
                    "metric": e.get("metric", ""),
                }
                for e in self._exercises()
            ],
        }

    def diagrams(self, doc_runs: Mapping[str, Any], settings: Settings | None = None) -> list[str]:
        """One SVG per topology, coloured by the utilisation of its first run in `doc_runs`."""
        groups = narrative.by_topology(doc_runs)
        workers = dict(settings.workers) if settings else {}
        return [
            diagram(top, doc_runs[groups[name][0]] if name in groups else {}, workers)
            for name, top in self.scenario.topologies.items()
        ]

    def run(self, settings: Settings) -> dict[str, Any]:
        """Simulate under `settings`; the charts, tables, headline and diagrams for the page."""
        overrides = self.overrides(settings)
        with self._lock:
            started = time.perf_counter()
            doc = simulate(self.file, overrides, settings.provider or None, self.replications)
            wall = time.perf_counter() - started
        return {
            "headline": narrative.headline(doc),
            "confidence": narrative.confidence_note(doc),
            "figures": [
                {"slug": c.slug, "title": c.title, "html": html} for c, html in figures(doc)
            ],
            "tables": tables(doc),
            "diagrams": self.diagrams(doc["runs"], settings),
            "engines": {k: r.get("engine", "") for k, r in doc["runs"].items()},
            "duration": doc["duration"],
            "wall_seconds": round(wall, 2),
        }

    def _exercises(self) -> list[dict[str, Any]]:
        items = self.raw.get("exercises") or []
        return [dict(e) for e in items if isinstance(e, Mapping)]

    def exercise(self, index: int, prediction: object) -> dict[str, Any]:
        """Reveal exercise `index` once a prediction (a direction, optionally a percent) is committed."""
        items = self._exercises()
        if not 0 <= index < len(items):
            raise ConfigError(
                self.file, [Problem("exercise", index, f"must be 0..{len(items) - 1}")]
            )
        direction, guess = _prediction(prediction)
        ex = items[index]
        with self._lock:
            baseline, changed, held = check_exercise(self.file, ex)
        ratio = changed / baseline if baseline else math.inf
        measured = "up" if ratio > 1 + SAME_BAND else "down" if ratio < 1 - SAME_BAND else "same"
        change_pct = (ratio - 1) * 100 if math.isfinite(ratio) else None
        record = {"exercise": index, "direction": direction, "guess_percent": guess}
        self.predictions.append(record)
        metric = str(ex.get("metric", ""))
        return {
            **record,
            "metric": metric,
            "baseline": baseline,
            "changed": changed,
            "baseline_text": quantity(metric, baseline),
            "changed_text": quantity(metric, changed),
            "change_percent": change_pct,
            "measured_direction": measured,
            "correct": measured == direction,
            "expectation_held": held,
            "answer": " ".join(str(ex.get("answer", "")).split()),
        }


def _prediction(prediction: object) -> tuple[str, float | None]:
    """The committed direction and optional percent guess; refuses an empty or unknown prediction."""
    p = prediction if isinstance(prediction, Mapping) else {}
    direction = p.get("direction")
    if direction not in DIRECTIONS:
        raise ConfigError(
            "lab exercise",
            [
                Problem(
                    "prediction.direction",
                    direction,
                    f"commit one of {', '.join(DIRECTIONS)} first",
                )
            ],
        )
    guess = p.get("guess_percent")
    if guess is not None and not isinstance(guess, int | float):
        raise ConfigError(
            "lab exercise", [Problem("prediction.guess_percent", guess, "must be a number")]
        )
    return str(direction), None if guess is None else float(guess)


def quantity(metric: str, value: float) -> str:
    """A metric value with its unit: seconds as ms or s, rates as percent, others plain."""
    if not math.isfinite(value):
        return "-"
    parts = metric.split(".")
    if any(p in parts for p in ("latency", "completion", "window", "W", "Wq", "drain_time")):
        return narrative.seconds(value)
    if parts[-1].endswith("rate") or parts[-1] in ("utilisation", "success_rate"):
        return f"{value * 100:.1f}%"
    return f"{value:,.4g}"


# ---- topology diagrams ------------------------------------------------------------------------

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 104, 38, 14, 42, 12
FILL = {"topic": "#eef3fb", "read_model": "#f3eefa", "flow": "#ffffff"}


@dataclass(frozen=True)
class _Node:
    name: str
    kind: str  # "flow", "service", "topic" or "read_model"
    detail: str


def _graph(top: Topology) -> tuple[list[_Node], list[tuple[str, str, str]]]:
    """Nodes and (source, target, 'call' | 'async') edges of a topology, flows first."""
    nodes = [_Node(f"flow:{f}", "flow", f) for f in top.entry]
    nodes += [_Node(s.name, "service", f"×{s.workers}" + (f" ×{s.partitions} lanes" if s.partitions > 1 else ""))
              for s in top.services.values()]  # fmt: skip
    nodes += [_Node(t, "topic", "topic") for t in top.topics]
    nodes += [_Node(r.name, "read_model", f"view ×{r.workers}") for r in top.read_models.values()]
    edges = [(f"flow:{f}", target, "call") for f, target in top.entry.items()]
    for s in top.services.values():
        edges += [(s.name, t, "call") for call in s.calls for t in call.targets]
        edges += [(s.name, p.topic, "async") for p in s.publishes]
    for t in top.topics:
        edges += [(t, sub, "async") for sub in top.subscribers(t)]
    names = {n.name for n in nodes}
    return nodes, [e for e in dict.fromkeys(edges) if e[0] in names and e[1] in names]


def _layers(nodes: Sequence[_Node], edges: Sequence[tuple[str, str, str]]) -> dict[str, int]:
    """Row of each node: breadth-first depth from the flows (unreached nodes below the rest)."""
    depth = {n.name: 0 for n in nodes if n.kind == "flow"}
    frontier = list(depth)
    while frontier:
        nxt = []
        for src in frontier:
            for a, b, _ in edges:
                if a == src and b not in depth:
                    depth[b] = depth[src] + 1
                    nxt.append(b)
        frontier = nxt
    last = max(depth.values(), default=0) + 1
    return {n.name: depth.get(n.name, last) for n in nodes}


def _utilisation_fill(u: float | None) -> str:
    if u is None:
        return "#ffffff"
    return "#e6f4ea" if u < 0.5 else "#fff4d6" if u < 0.8 else "#fde2c8" if u < 0.95 else "#f8c9c4"


def diagram(top: Topology, run: Mapping[str, Any], workers: Mapping[str, int] | None = None) -> str:
    """An SVG of `top`: boxes per flow, service, topic and read model, arrows for calls (solid) and events (dashed).

    Services and read models are shaded by utilisation when `run` has it;
    `workers` overrides the worker counts shown.
    """
    nodes, edges = _graph(top)
    if workers:
        nodes = [
            _Node(n.name, n.kind, f"×{workers[n.name]}" + n.detail[len(n.detail.split(" ")[0]):])
            if n.kind == "service" and n.name in workers else n
            for n in nodes
        ]  # fmt: skip
    rows = _layers(nodes, edges)
    by_row: dict[int, list[_Node]] = {}
    for n in nodes:
        by_row.setdefault(rows[n.name], []).append(n)
    widest = max(len(v) for v in by_row.values())
    width = max(240, PAD * 2 + widest * BOX_W + (widest - 1) * GAP_X)
    height = PAD * 2 + 22 + len(by_row) * BOX_H + (len(by_row) - 1) * GAP_Y
    pos: dict[str, tuple[float, float]] = {}
    for r, row in enumerate(sorted(by_row)):
        members = by_row[row]
        span = len(members) * BOX_W + (len(members) - 1) * GAP_X
        x0 = (width - span) / 2
        for i, n in enumerate(members):
            pos[n.name] = (x0 + i * (BOX_W + GAP_X), PAD + 22 + r * (BOX_H + GAP_Y))
    marker = f"arrow-{top.name}".replace(" ", "-")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="topology" data-topology="{_esc(top.name)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>',
        f'<text x="{width / 2}" y="{PAD + 8}" text-anchor="middle" font-size="13" font-weight="bold">{_esc(top.name)}</text>',
    ]  # fmt: skip
    for a, b, kind in edges:
        (ax, ay), (bx, by) = pos[a], pos[b]
        dash = ' stroke-dasharray="5 3"' if kind == "async" else ""
        x1, x2 = ax + BOX_W / 2, bx + BOX_W / 2
        if by > ay:
            path = f"M{x1:.1f},{ay + BOX_H:.1f} L{x2:.1f},{by:.1f}"
        else:  # an edge back up (feedback through a topic): a curve beside the boxes
            bend = max(ax, bx) + BOX_W + 30
            path = (f"M{ax + BOX_W:.1f},{ay + BOX_H / 2:.1f} C{bend:.1f},{ay + BOX_H / 2:.1f} "
                    f"{bend:.1f},{by + BOX_H / 2:.1f} {bx + BOX_W:.1f},{by + BOX_H / 2:.1f}")  # fmt: skip
        out.append(
            f'<path class="edge" data-from="{_esc(a)}" data-to="{_esc(b)}" d="{path}" fill="none" '
            f'stroke="#444" stroke-width="1.3"{dash} marker-end="url(#{marker})"/>'
        )
    services = run.get("services", {}) if run else {}
    for n in nodes:
        x, y = pos[n.name]
        u = (
            narrative.mean(services.get(n.name, {}).get("utilisation"))
            if n.name in services
            else None
        )
        fill = FILL.get(n.kind) if n.kind in ("topic", "flow") else _utilisation_fill(u)
        rx = 14 if n.kind == "topic" else 3
        label = n.detail if n.kind != "flow" else "requests"
        busy = f" · {u * 100:.0f}% busy" if u is not None else ""
        shown = n.name.removeprefix("flow:")
        dash = ' stroke-dasharray="2 2"' if n.kind == "flow" else ""
        out.append(
            f'<g class="node {n.kind}" data-name="{_esc(shown)}"><title>{_esc(shown)} ({n.kind}){busy}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="{rx}" fill="{fill}" '
            f'stroke="#555"{dash}/>'
            f'<text x="{x + BOX_W / 2:.1f}" y="{y + 15:.1f}" text-anchor="middle" font-weight="bold">'
            f"{_esc(_short(shown))}</text>"
            f'<text x="{x + BOX_W / 2:.1f}" y="{y + 29:.1f}" text-anchor="middle" fill="#555">'
            f"{_esc(_short(label + busy, 18))}</text></g>"
        )
    out.append("</svg>")
    return "\n".join(out)


def _short(text: str, limit: int = 15) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _esc(text: str) -> str:
    from html import escape

    return escape(text, quote=True)


# ---- the HTTP server --------------------------------------------------------------------------


class LabServer(PageServer):
    """The lab on a local port: GET / (the page), /api/scenario; POST /api/run, /api/exercise."""

    def __init__(self, lab: Lab, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_handler(lab), host, port)
        self.lab = lab


def _handler(lab: Lab) -> type[BaseHTTPRequestHandler]:
    class Handler(PageHandler):
        def _json(self, status: int, payload: object) -> None:
            self._send(
                status,
                json.dumps(payload, allow_nan=False, default=_nan_free).encode(),
                "application/json",
            )

        def do_GET(self) -> None:
            if self.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, PAGE.encode("utf-8"), "text/html; charset=utf-8")
            elif self.path == "/api/scenario":
                self._json(HTTPStatus.OK, _clean(lab.describe()))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {self.path}"})

        def do_POST(self) -> None:
            try:
                body = self._read_json()
                if self.path == "/api/run":
                    self._json(HTTPStatus.OK, _clean(lab.run(Settings.from_json(body))))
                elif self.path == "/api/exercise":
                    index = body.get("index") if isinstance(body, Mapping) else None
                    pred = body.get("prediction") if isinstance(body, Mapping) else None
                    if not isinstance(index, int):
                        raise ConfigError(
                            "lab exercise", [Problem("index", index, "must be an integer")]
                        )
                    self._json(HTTPStatus.OK, _clean(lab.exercise(index, pred)))
                else:
                    self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {self.path}"})
            except (PolybusError, ValueError) as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})

    return Handler


def _clean(value: Any) -> Any:
    """NaN and infinities as null (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _nan_free(value: object) -> object:
    return str(value)
