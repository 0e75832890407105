"""Derive a scenario from a running system's spans (``polybus sim from-traces SPANS``).

Input: JSON lines of span records (core/tracing/records.py), e.g. from
``polybus demo --trace-out``. The rules:

- every subscription that handled events (CONSUMER spans ``process {sub}``,
  attribute ``messaging.destination.subscription.name``) is a service of the
  event topology, named after the subscription (or after the scenario's
  service, ``polybus.sim.station``, in ``sim live --trace-out`` spans);
- every event type published (PRODUCER spans, ``cloudevents.event_type``) is
  a topic, so a filtered subscription consumes only the types it handled;
- a service publishes a type with probability (events of that type published
  under its deliveries) / (its deliveries); e.g. a service that confirms an
  order once both of its two inputs arrived publishes with p = 0.5;
- root spans (no parent) are flow instances: a root that publishes makes an
  entry service named after the root's service, the flow named after the
  root's ``polybus.flow`` attribute or its name's first word (``checkout
  order-1`` -> flow ``checkout``); a PRODUCER root makes the flow enter its
  topic directly;
- service time = from the span's start to its first publish (the model adds
  the broker's publish latency itself; what the span does after publishing,
  waiting for the publish to return and settling, delays nothing
  downstream), or the whole span when it publishes nothing; 30 samples or
  more are fitted with a log-normal (maximum likelihood), fewer become an
  empirical distribution;
- workers = the most visits of that service observed in progress at once;
- arrival rate = (roots - 1) / (last root start - first root start), Poisson.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from polybus.core.errors import ConfigError, Problem
from polybus.core.tracing.records import SpanRecord
from polybus.sim.calibrate import fit_lognormal, read_spans
from polybus.sim.loader import parse_scenario
from polybus.sim.topology import Scenario

FIT_MIN = 30
SUBSCRIPTION = "messaging.destination.subscription.name"
EVENT_TYPE = "cloudevents.event_type"
STATION = "polybus.sim.station"  # sim live's spans name the scenario's service
FLOW = "polybus.flow"


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "unnamed"


def _distribution(samples: Sequence[float]) -> Any:
    xs = [x for x in samples if x > 0]
    if not xs:
        return 0.0
    if len(xs) >= FIT_MIN:
        return fit_lognormal(xs).distribution()
    return {"dist": "empirical", "samples": [float(f"{x:.6g}") for x in xs]}


def _concurrency(spans: Sequence[SpanRecord]) -> int:
    edges = sorted([(s.start_ns, 1) for s in spans] + [(s.end_ns, -1) for s in spans])
    best = level = 0
    for _, step in edges:
        level += step
        best = max(best, level)
    return max(1, best)


def _topic(span: SpanRecord) -> str:
    return _name(str(span.attributes.get(EVENT_TYPE) or span.name.removeprefix("send ")))


def derive(
    records: Iterable[SpanRecord], name: str = "from-traces", source: str = ""
) -> dict[str, Any]:
    """The scenario document (a YAML-able mapping) the spans imply."""
    spans = list(records)
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[SpanRecord]] = defaultdict(list)
    for s in spans:
        if s.parent_span_id in by_id:
            children[s.parent_span_id].append(s)  # type: ignore[index]
    visits: dict[str, list[SpanRecord]] = defaultdict(list)  # service -> its visit spans
    entry: dict[str, str] = {}
    roots: dict[str, list[SpanRecord]] = defaultdict(list)  # flow -> root spans
    consumes: dict[str, set[str]] = defaultdict(set)
    systems: Counter[str] = Counter()
    for s in spans:
        if s.kind == "PRODUCER":
            systems[str(s.attributes.get("messaging.system", ""))] += 1
        if s.kind == "CONSUMER" and SUBSCRIPTION in s.attributes:
            service = _name(str(s.attributes.get(STATION) or s.attributes[SUBSCRIPTION]))
            visits[service].append(s)
            parent = by_id.get(s.parent_span_id or "")
            if parent is not None and parent.kind == "PRODUCER":
                consumes[service].add(_topic(parent))
        elif s.parent_span_id is None or s.parent_span_id not in by_id:
            named = s.attributes.get(FLOW) or (s.name.split() or ["flow"])[0]
            flow = _name(str(named))
            if s.kind == "PRODUCER":
                roots[flow].append(s)
                entry[flow] = _topic(s)
            elif any(c.kind == "PRODUCER" for c in children[s.span_id]):
                roots[flow].append(s)
                entry[flow] = _name(s.service)
                visits[entry[flow]].append(s)
    if not roots:
        raise ConfigError(
            source or "spans",
            [
                Problem(
                    "spans", len(spans), "no root span that publishes: nothing enters the system"
                )
            ],
        )
    services = {}
    for service, mine in visits.items():
        published: Counter[str] = Counter()
        times = []
        for v in mine:
            pubs = [c for c in children[v.span_id] if c.kind == "PRODUCER"]
            published.update(_topic(p) for p in pubs)
            # the work before its first publish: what delays the next hop (after it, the span
            # only waits for its publish to return and settles, which nothing downstream sees)
            own = min((p.start_ns for p in pubs), default=v.end_ns) - v.start_ns
            times.append(max(0, own) / 1e9)
        publish: list[Any] = []
        for topic, count in sorted(published.items()):
            p = min(1.0, count / len(mine))
            publish.append(topic if p >= 0.995 else {"topic": topic, "p": round(p, 3)})
        spec: dict[str, Any] = {"workers": _concurrency(mine), "service_time": _distribution(times)}
        if consumes.get(service):
            spec["consumes"] = sorted(consumes[service])
        if publish:
            spec["publish"] = publish
        services[service] = spec
    workload = {}
    for flow, rs in roots.items():
        starts = sorted(r.start_ns for r in rs)
        span_s = (starts[-1] - starts[0]) / 1e9
        rate = (len(starts) - 1) / span_s if len(starts) > 1 and span_s > 0 else 1.0
        workload[flow] = {"pattern": "poisson", "rate": float(f"{rate:.4g}")}
    system = systems.most_common(1)[0][0] if systems else ""
    provider = system.removeprefix("polybus.") or "local"
    return {
        "name": name,
        "description": f"Derived by polybus sim from-traces from {source or 'spans'}: "
        f"{len(spans)} spans, {sum(len(r) for r in roots.values())} flow instance(s).",
        "duration": 300, "warmup": 30, "replications": 2, "seed": 1, "provider": provider,
        "workload": workload,
        "topologies": {"event": {"entry": entry, "services": services}},
    }  # fmt: skip


def from_traces(path: str | Path, name: str | None = None) -> tuple[dict[str, Any], Scenario]:
    """The derived scenario document and the validated Scenario it loads as."""
    path = Path(path)
    doc = derive(read_spans(path), name or _name(path.stem), str(path))
    return doc, parse_scenario(doc, str(path))


def to_yaml(doc: dict[str, Any]) -> str:
    """The scenario document as YAML with a header naming its origin."""
    return (
        "# Derived by polybus sim from-traces: edit freely (see docs/sim.md).\n"
        + yaml.safe_dump(doc, sort_keys=False, width=100)
    )
