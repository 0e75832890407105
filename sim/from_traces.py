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
  under its deliveries) / (its deliveries);
- a join: a service consuming several types whose visits within one trace
  (one flow instance) handled every one of them, where exactly one of those
  visits published, after every input's visit had started (in at least 90%
  of the traces that delivered every input), gets ``join: all``, and its
  probabilities are per flow instance instead of per delivery (e.g. the
  demo's confirmation, after stock reserved and payment charged: p = 1);
- synchronous calls: a CLIENT span with a child SERVER span in another
  service is a call, and the SERVER span a visit of its service (named by
  ``polybus.sim.station`` or the span's service); a visit's calls in start
  order are its steps, a call starting before the previous one ended joins
  it as a fan-out (``join: all``); a service's ``calls`` are its most
  frequent sequence of steps (timeouts and retries are not derived); with
  calls and no publishes the topology is named ``request``, else ``event``;
- root spans (no parent) are flow instances: a root that publishes or calls
  makes an entry service named after the root's service, the flow named
  after the root's ``polybus.flow`` attribute or its name's first word
  (``checkout order-1`` -> flow ``checkout``); a PRODUCER root makes the
  flow enter its topic directly;
- service time = from the span's start to its first publish (the model adds
  the broker's publish latency itself; what the span does after publishing,
  waiting for the publish to return and settling, delays nothing
  downstream), or the whole span when it publishes nothing, less the time
  it waited for its own calls; 30 samples or more are fitted (see ``fit``),
  fewer become an empirical distribution of the samples themselves;
- settle time = from the end of a visit's last publish or call to the end
  of its span (a consumer acknowledging its delivery): nothing downstream
  waits for it, but the service's worker is still held, so the next visit
  queues behind it (``settle_time``, only when some visit spent time there);
- per topic, the broker's latencies as the spans show them: publish latency
  = PRODUCER span durations; delivery latency = consumer start - producer
  end, over the deliveries that found a worker of their service free at the
  publish (waiting for a busy worker is queueing, which the model adds); so
  the scenario carries the measured broker, hop by hop, in ``topics``;
- ``fit``: 30 samples or more become a log-normal (default) or 200
  empirical quantiles (``empirical``, keeps the tail);
- workers = the most visits of that service observed in progress at once;
- arrival rate = (roots - 1) / (last root start - first root start), Poisson;
- ``cpus`` (``--host-cpus N``): the services ran on one host of N CPUs (one
  Python process: 1); every service goes on one host (``hosts``) and each
  piece of a flow (a visit's work and settle, a publish, a delivery that
  found its worker free) is fitted as its CPU demand, the integral of
  1/n(t) over it, n the pieces in progress: what processor sharing turns
  back into the durations seen;
- drift: a flow's factor is the mean of its pieces' log(time / that kind's
  median); when the factors share more variance than their pieces' noise
  explains (variance components, 30 flows or more), the topology gets a
  ``speed`` (sim.speed) with that sigma and the factors' correlation time,
  and each flow's shrunken factor is taken out of its samples first.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from polybus.core.errors import ConfigError, Problem
from polybus.core.tracing.records import SpanRecord
from polybus.sim.calibrate import FITS, empirical, fit_lognormal, read_spans
from polybus.sim.loader import parse_scenario
from polybus.sim.topology import Scenario
from polybus.sim.trace_pieces import Piece, flow_pieces, flow_speeds, most_concurrent, own_seconds

FIT_MIN = 30
SUBSCRIPTION = "messaging.destination.subscription.name"
EVENT_TYPE = "cloudevents.event_type"
STATION = "polybus.sim.station"  # sim live's spans name the scenario's service
FLOW = "polybus.flow"
JOIN_SHARE = 0.9  # share of flow instances that must look like a join to call it one


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "unnamed"


def _distribution(samples: Sequence[float], fit: str = "lognormal") -> Any:
    xs = [x for x in samples if x > 0]
    if not xs:
        return 0.0
    if len(xs) >= FIT_MIN:
        return empirical(xs) if fit == "empirical" else fit_lognormal(xs).distribution()
    return {"dist": "empirical", "samples": [float(f"{x:.6g}") for x in xs]}


def _join_instances(
    mine: Sequence[SpanRecord], topics: set[str], by_id: dict[str, SpanRecord],
    children: dict[str, list[SpanRecord]],
) -> int | None:  # fmt: skip
    """How many flow instances a join service completed, or None when the visits show no join.

    A join: in (nearly) every trace where the service handled all of its
    topics, exactly one visit published, after every input's visit had started.
    """
    if len(topics) < 2:
        return None
    traces: dict[str, list[SpanRecord]] = defaultdict(list)
    for v in mine:
        traces[v.trace_id].append(v)
    complete = joins = 0
    for vs in traces.values():
        got = {_topic(by_id[v.parent_span_id]) for v in vs if v.parent_span_id in by_id}
        if not topics <= got:
            continue
        complete += 1
        acting = [v for v in vs if any(c.kind == "PRODUCER" for c in children[v.span_id])]
        if len(acting) != 1:
            continue
        published = min(c.start_ns for c in children[acting[0].span_id] if c.kind == "PRODUCER")
        if published >= max(v.start_ns for v in vs):  # after every input's visit had started
            joins += 1
    return complete if complete and joins >= JOIN_SHARE * complete else None


def _topic(span: SpanRecord) -> str:
    return _name(str(span.attributes.get(EVENT_TYPE) or span.name.removeprefix("send ")))


def _server_of(client: SpanRecord, children: dict[str, list[SpanRecord]]) -> SpanRecord | None:
    """The SERVER span a CLIENT span called (its child in another service), if traced."""
    for c in children[client.span_id]:
        if c.kind == "SERVER" and c.service != client.service:
            return c
    return None


def _visit_service(span: SpanRecord) -> str:
    return _name(str(span.attributes.get(STATION) or span.service))


def _steps(
    visit: SpanRecord, children: dict[str, list[SpanRecord]]
) -> tuple[tuple[tuple[str, ...], ...], list[tuple[int, int]]]:
    """The visit's synchronous calls as steps (overlapping calls: one fan-out) and their intervals."""
    calls = sorted(
        (c.start_ns, c.end_ns, _visit_service(srv))
        for c in children[visit.span_id]
        if c.kind == "CLIENT" and (srv := _server_of(c, children)) is not None
    )
    steps: list[list[str]] = []
    spans: list[tuple[int, int]] = []
    for start, end, target in calls:
        if spans and start < spans[-1][1]:  # starts before the step in progress ends: parallel
            steps[-1].append(target)
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            steps.append([target])
            spans.append((start, end))
    return tuple(tuple(sorted(step)) for step in steps), spans  # a fan-out's order is moot


def _call_spec(step: tuple[str, ...]) -> dict[str, Any]:
    return {"to": step[0]} if len(step) == 1 else {"fanout": list(step), "join": "all"}


def derive(
    records: Iterable[SpanRecord], name: str = "from-traces", source: str = "",
    fit: str = "lognormal", cpus: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The scenario document (a YAML-able mapping) the spans imply.

    `fit` is how 30 samples or more become a distribution: ``lognormal``
    (maximum likelihood) or ``empirical`` (200 quantiles, keeps the tail).
    `cpus`: the traced services ran on one host with that many CPUs (one
    Python process: 1); they share it in the scenario (``hosts``), and their
    times are fitted as CPU demands (see `sim.trace_pieces.own_seconds`).
    """
    if fit not in FITS:
        raise ConfigError("from-traces", [Problem("fit", fit, f"must be one of {', '.join(FITS)}")])
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
    publish_s: dict[str, list[float]] = defaultdict(list)  # topic -> publish latencies, s
    deliveries: list[tuple[str, SpanRecord, SpanRecord]] = []  # (service, producer, consumer)
    publishes: list[SpanRecord] = []
    for s in spans:
        if s.kind == "PRODUCER":
            systems[str(s.attributes.get("messaging.system", ""))] += 1
            publishes.append(s)
        parent = by_id.get(s.parent_span_id or "")
        if s.kind == "CONSUMER" and SUBSCRIPTION in s.attributes:
            service = _name(str(s.attributes.get(STATION) or s.attributes[SUBSCRIPTION]))
            visits[service].append(s)
            if parent is not None and parent.kind == "PRODUCER":
                consumes[service].add(_topic(parent))
                deliveries.append((service, parent, s))
        elif s.kind == "SERVER" and parent is not None and parent.kind == "CLIENT":
            if parent.service != s.service:
                visits[_visit_service(s)].append(s)
        elif parent is None:
            named = s.attributes.get(FLOW) or (s.name.split() or ["flow"])[0]
            flow = _name(str(named))
            if s.kind == "PRODUCER":
                roots[flow].append(s)
                entry[flow] = _topic(s)
            elif any(c.kind in ("PRODUCER", "CLIENT") for c in children[s.span_id]):
                roots[flow].append(s)
                entry[flow] = _visit_service(s) if STATION in s.attributes else _name(s.service)
                visits[entry[flow]].append(s)
    workers = {name: most_concurrent(mine) for name, mine in visits.items()}
    pieces = flow_pieces(visits, children, deliveries, workers)
    system = systems.most_common(1)[0][0] if systems else ""
    provider = system.removeprefix("polybus.") or "local"
    in_process = provider == "local"  # the embedded bus delivers in the services' own process
    measured = own_seconds(pieces, shared=cpus is not None, bus_work=in_process)
    speed, deflate = flow_speeds(pieces, measured)

    def own(piece: str, span: SpanRecord, ns: int, whole: int | None = None) -> float:
        """A piece of `span` lasting `ns` (of `whole` measured), in s of its own work.

        On a shared host its CPU demand (the share of `whole` that is `ns`);
        with the flow's shared slowness taken out when the flows show one.
        """
        own_s = measured.get((piece, span.span_id))
        seconds = ns / 1e9 if own_s is None else own_s * (ns / whole if whole else 1.0)
        return seconds * deflate.get(span.trace_id, 1.0)

    for s in publishes:
        publish_s[_topic(s)].append(own("publish", s, s.end_ns - s.start_ns))

    if not roots:
        raise ConfigError(
            source or "spans",
            [
                Problem(
                    "spans", len(spans),
                    "no root span that publishes or calls: nothing enters the system",
                )
            ],
        )  # fmt: skip
    services = {}
    any_publish = any_call = False
    for service, mine in visits.items():
        published: Counter[str] = Counter()
        sequences: Counter[tuple[tuple[str, ...], ...]] = Counter()
        times, settles = [], []
        for v in mine:
            pubs = [c for c in children[v.span_id] if c.kind == "PRODUCER"]
            acts = [c for c in children[v.span_id] if c.kind in ("PRODUCER", "CLIENT")]
            if acts:  # after its last call or publish the visit still holds its worker
                settles.append(own("settle", v, max(0, v.end_ns - max(c.end_ns for c in acts))))
            published.update(_topic(p) for p in pubs)
            steps, waits = _steps(v, children)
            sequences[steps] += 1
            # the work before its first publish: what delays the next hop (after it, the span
            # only waits for its publish to return and settles, which nothing downstream sees),
            # less the time its worker waited for its own calls
            cut = min((p.start_ns for p in pubs), default=v.end_ns)
            waited = sum(max(0, min(e, cut) - max(b, v.start_ns)) for b, e in waits)
            times.append(own("work", v, max(0, cut - v.start_ns - waited), cut - v.start_ns))
        joined = _join_instances(mine, consumes.get(service, set()), by_id, children)
        per = len(mine) if joined is None else joined
        publish: list[Any] = []
        for topic, count in sorted(published.items()):
            p = min(1.0, count / per)
            publish.append(topic if p >= 0.995 else {"topic": topic, "p": round(p, 3)})
        spec: dict[str, Any] = {
            "workers": workers[service], "service_time": _distribution(times, fit)
        }  # fmt: skip
        if settles and max(settles) > 0:
            spec["settle_time"] = _distribution(settles, fit)
        calls = sequences.most_common(1)[0][0]  # the usual order of its calls
        if calls:
            spec["calls"] = [_call_spec(step) for step in calls]
        if consumes.get(service):
            spec["consumes"] = sorted(consumes[service])
        if joined is not None:
            spec["join"] = "all"
        if publish:
            spec["publish"] = publish
        services[service] = spec
        any_publish = any_publish or bool(publish)
        any_call = any_call or bool(calls)
    workload = {}
    for flow, rs in roots.items():
        starts = sorted(r.start_ns for r in rs)
        span_s = (starts[-1] - starts[0]) / 1e9
        rate = (len(starts) - 1) / span_s if len(starts) > 1 and span_s > 0 else 1.0
        workload[flow] = {"pattern": "poisson", "rate": float(f"{rate:.4g}")}
    topology = "request" if any_call and not any_publish else "event"
    top: dict[str, Any] = {"entry": entry, "services": services}
    topics = _latencies(services, pieces, publish_s, deliveries, set(entry.values()), fit, own)
    if topics:
        top["topics"] = topics
    if cpus is not None:
        top["hosts"] = {"host": {"cpus": cpus, "in_process_bus": in_process}}
        for spec in services.values():
            spec["host"] = "host"
    if speed is not None:
        top["speed"] = {
            "sigma": speed.sigma, "correlation_time": speed.correlation_time
        }  # fmt: skip
    return {
        "name": name,
        "description": f"Derived by polybus sim from-traces from {source or 'spans'}: "
        f"{len(spans)} spans, {sum(len(r) for r in roots.values())} flow instance(s).",
        "duration": 300, "warmup": 30, "replications": 2, "seed": 1, "provider": provider,
        "workload": workload,
        "topologies": {topology: top},
    }  # fmt: skip


def _latencies(
    services: dict[str, dict[str, Any]], pieces: dict[tuple[str, str], Piece],
    publish_s: dict[str, list[float]], deliveries: Sequence[tuple[str, SpanRecord, SpanRecord]],
    entries: set[str], fit: str, own: Callable[[str, SpanRecord, int], float],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per topic: the publish latency (PRODUCER spans) and the delivery latency the spans show.

    Delivery latency is the consumer's start minus its producer's end, from
    the deliveries that found a worker of their service free at the publish
    (the ``deliver`` pieces; a wait for a busy worker is queueing, which the
    model adds itself).
    """
    published = {
        (p if isinstance(p, str) else p["topic"])
        for spec in services.values()
        for p in spec.get("publish", [])
    } | (entries & set(publish_s))
    free: dict[str, list[float]] = defaultdict(list)
    for _, producer, consumer in deliveries:
        if ("deliver", consumer.span_id) in pieces:
            free[_topic(producer)].append(
                own("deliver", consumer, consumer.start_ns - producer.end_ns)
            )
    out = {}
    for topic in sorted(published):
        spec = {}
        if publish_s.get(topic):
            spec["publish_latency"] = _distribution(publish_s[topic], fit)
        if free.get(topic):
            spec["delivery_latency"] = _distribution(free[topic], fit)
        if spec:
            out[topic] = spec
    return out


def from_traces(
    path: str | Path, name: str | None = None, fit: str = "lognormal", cpus: int | None = None
) -> tuple[dict[str, Any], Scenario]:
    """The derived scenario document and the validated Scenario it loads as."""
    path = Path(path)
    doc = derive(read_spans(path), name or _name(path.stem), str(path), fit, cpus)
    return doc, parse_scenario(doc, str(path))


def to_yaml(doc: dict[str, Any]) -> str:
    """The scenario document as YAML with a header naming its origin."""
    return (
        "# Derived by polybus sim from-traces: edit freely (see docs/sim.md).\n"
        + yaml.safe_dump(doc, sort_keys=False, width=100)
    )
