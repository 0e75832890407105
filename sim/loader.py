"""Load and validate a scenario YAML file into `sim.topology.Scenario`.

Every problem is collected into one `ConfigError` whose subject is the file
and whose problems name the YAML path (``topologies.event.services.cart.workers``)
and the rule broken, so a user fixes the whole file in one go.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from polybus.core.errors import ConfigError, Problem
from polybus.sim.distributions import parse_distribution
from polybus.sim.profiles import providers
from polybus.sim.topology import (
    ENGINES,
    PATTERNS,
    Call,
    Fault,
    Publish,
    ReadModel,
    Scenario,
    Service,
    Topology,
    Workload,
)


def load_scenario(path: str | Path, overrides: Mapping[str, object] | None = None) -> Scenario:
    """Read `path`, apply dotted-path `overrides` (e.g. ``workload.checkout.rate``), validate."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            str(path), [Problem("file", str(path), f"cannot be read: {exc}")]
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(
            str(path), [Problem("file", str(path), f"is not valid YAML: {exc}")]
        ) from exc
    return parse_scenario(raw, str(path), overrides)


def apply_override(raw: dict[str, Any], dotted: str, value: object) -> list[Problem]:
    """Set ``raw[a][b][c] = value`` for ``dotted = 'a.b.c'``; a Problem if a parent is missing."""
    keys = dotted.split(".")
    node: Any = raw
    for i, key in enumerate(keys[:-1]):
        nxt = node.get(key) if isinstance(node, dict) else None
        if not isinstance(nxt, dict):
            return [Problem(".".join(keys[: i + 1]), nxt, "override path does not exist")]
        node = nxt
    node[keys[-1]] = value
    return []


def parse_scenario(
    raw: object, file: str = "<scenario>", overrides: Mapping[str, object] | None = None
) -> Scenario:
    """Validate an already-parsed YAML document; raise ConfigError listing every problem."""
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        raise ConfigError(file, [Problem("<root>", type(raw).__name__, "must be a mapping")])
    raw = copy.deepcopy(raw)
    for dotted, value in (overrides or {}).items():
        problems += apply_override(raw, dotted, value)
    v = _Validator(problems)
    duration = v.number(raw, "duration", "duration", positive=True, default=600.0)
    warmup = v.number(raw, "warmup", "warmup", default=0.0)
    if warmup >= duration:
        problems.append(Problem("warmup", warmup, "must be < duration"))
    provider = raw.get("provider", "local")
    if provider not in providers():
        problems.append(Problem("provider", provider, f"must be one of {', '.join(providers())}"))
    engine = raw.get("engine", "auto")
    if engine not in ENGINES:
        problems.append(Problem("engine", engine, f"must be one of {', '.join(ENGINES)}"))
    workloads = _workloads(raw.get("workload"), v)
    flows = {w.flow for w in workloads}
    topologies: dict[str, Topology] = {}
    tops = raw.get("topologies")
    if not isinstance(tops, dict) or not tops:
        problems.append(
            Problem("topologies", tops, "must be a non-empty mapping of name to topology")
        )
    else:
        for name, spec in tops.items():
            topologies[name] = _topology(str(name), spec, f"topologies.{name}", flows, v)
    faults = _faults(raw.get("faults", []), v, topologies, duration)
    grid = raw.get("stale_grid", [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0])
    if not isinstance(grid, list) or not all(v.is_num(x) for x in grid):
        problems.append(Problem("stale_grid", grid, "must be a list of seconds"))
        grid = []
    if problems:
        raise ConfigError(file, problems)
    return Scenario(
        name=str(raw.get("name", Path(file).stem)),
        file=file,
        duration=duration,
        warmup=warmup,
        replications=v.integer(raw, "replications", "replications", default=5),
        seed=v.integer(raw, "seed", "seed", default=1, minimum=0),
        workloads=tuple(workloads),
        topologies=topologies,
        faults=tuple(faults),
        provider=str(provider),
        description=str(raw.get("description", "")),
        sample_interval=v.number(
            raw, "sample_interval", "sample_interval", positive=True, default=1.0
        ),
        stale_grid=tuple(float(x) for x in grid),
        engine=str(engine),
        chunk=v.number(
            raw, "chunk", "chunk", positive=True, default=_auto_chunk(workloads, duration)
        ),
        raw=raw,
    )


class _Validator:
    """Small typed getters that record a Problem instead of raising."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems

    @staticmethod
    def is_num(x: object) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool)

    def number(
        self,
        spec: Mapping[str, Any],
        key: str,
        path: str,
        *,
        positive: bool = False,
        default: float | None = None,
        maximum: float | None = None,
    ) -> float:
        value = spec.get(key, default)
        if value is None:
            self.problems.append(Problem(path, None, "is required"))
            return 0.0
        if not self.is_num(value) or value < 0 or (positive and value <= 0):
            self.problems.append(
                Problem(
                    path, value, "must be a number > 0" if positive else "must be a number >= 0"
                )
            )
            return 0.0
        if maximum is not None and value > maximum:
            self.problems.append(Problem(path, value, f"must be <= {maximum}"))
        return float(value)

    def integer(
        self,
        spec: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: int | None = None,
        minimum: int = 1,
    ) -> int:
        value = spec.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.problems.append(Problem(path, value, f"must be an integer >= {minimum}"))
            return minimum
        return value

    def mapping(self, value: object, path: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.problems.append(Problem(path, value, "must be a mapping"))
            return {}
        return value

    def names(self, value: object, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            return tuple(value)
        self.problems.append(Problem(path, value, "must be a name or a list of names"))
        return ()


def _workloads(spec: object, v: _Validator) -> list[Workload]:
    out: list[Workload] = []
    if not isinstance(spec, dict) or not spec:
        v.problems.append(
            Problem("workload", spec, "must be a non-empty mapping of flow name to arrivals")
        )
        return out
    for flow, w in spec.items():
        p = f"workload.{flow}"
        w = v.mapping(w, p)
        pattern = w.get("pattern", "poisson")
        if pattern not in PATTERNS:
            v.problems.append(
                Problem(f"{p}.pattern", pattern, f"must be one of {', '.join(PATTERNS)}")
            )
            continue
        devices = v.integer(w, "devices", f"{p}.devices", default=0, minimum=0)
        rate = 0.0
        if pattern in ("poisson", "diurnal"):
            if "rate_per_device" in w:
                if devices < 1:
                    v.problems.append(
                        Problem(f"{p}.devices", devices, "must be >= 1 with rate_per_device")
                    )
                rate = devices * v.number(
                    w, "rate_per_device", f"{p}.rate_per_device", positive=True
                )
            else:
                rate = v.number(w, "rate", f"{p}.rate", positive=True)
        elif devices < 1:
            v.problems.append(
                Problem(f"{p}.devices", devices, f"must be >= 1 for pattern {pattern}")
            )
        out.append(
            Workload(
                flow=str(flow),
                pattern=pattern,
                rate=rate,
                devices=devices,
                period=v.number(w, "period", f"{p}.period", positive=True, default=60.0),
                jitter=v.number(w, "jitter", f"{p}.jitter", default=0.0),
                spread=v.number(w, "spread", f"{p}.spread", positive=True, default=1.0),
                amplitude=v.number(w, "amplitude", f"{p}.amplitude", default=0.0, maximum=1.0),
                cycle=v.number(w, "cycle", f"{p}.cycle", positive=True, default=86400.0),
                peak=v.number(w, "peak", f"{p}.peak", default=0.0),
            )
        )
    return out


def _topology(name: str, spec: object, p: str, flows: set[str], v: _Validator) -> Topology:
    spec = v.mapping(spec, p)
    services: dict[str, Service] = {}
    for sname, s in v.mapping(spec.get("services"), f"{p}.services").items():
        services[str(sname)] = _service(str(sname), s, f"{p}.services.{sname}", v)
    read_models: dict[str, ReadModel] = {}
    for rname, r in v.mapping(spec.get("read_models", {}), f"{p}.read_models").items():
        rp = f"{p}.read_models.{rname}"
        r = v.mapping(r, rp)
        since = r.get("since", "event")
        if since not in ("event", "flow"):
            v.problems.append(Problem(f"{rp}.since", since, "must be 'event' or 'flow'"))
        read_models[str(rname)] = ReadModel(
            since=str(since),
            name=str(rname),
            consumes=v.names(r.get("consumes"), f"{rp}.consumes"),
            workers=v.integer(r, "workers", f"{rp}.workers", default=1),
            projection_time=parse_distribution(
                r.get("projection_time", 0.0), f"{rp}.projection_time", v.problems
            ),
        )
    topics = {
        str(k): dict(v.mapping(t or {}, f"{p}.topics.{k}"))
        for k, t in v.mapping(spec.get("topics", {}), f"{p}.topics").items()
    }
    entry = v.mapping(spec.get("entry"), f"{p}.entry")
    for flow in flows - set(entry):
        v.problems.append(Problem(f"{p}.entry", flow, "every workload flow needs an entry service"))
    for flow, target in entry.items():
        if target not in services and target not in topics:
            v.problems.append(
                Problem(
                    f"{p}.entry.{flow}",
                    target,
                    "must name a service or a declared topic of this topology",
                )
            )
    provider = spec.get("provider")
    if provider is not None and provider not in providers():
        v.problems.append(
            Problem(f"{p}.provider", provider, f"must be one of {', '.join(providers())}")
        )
    _cross_check(p, services, topics, read_models, set(entry.values()), v)
    return Topology(name, dict(entry), services, topics, read_models, provider)


def _service(name: str, s: object, p: str, v: _Validator) -> Service:
    s = v.mapping(s, p)
    calls: list[Call] = []
    raw_calls = s.get("calls", [])
    if not isinstance(raw_calls, list):
        v.problems.append(Problem(f"{p}.calls", raw_calls, "must be a list"))
        raw_calls = []
    for i, c in enumerate(raw_calls):
        calls.append(_call(c, f"{p}.calls[{i}]", v))
    publishes: list[Publish] = []
    raw_pub = s.get("publish", [])
    for i, item in enumerate(raw_pub if isinstance(raw_pub, list) else [raw_pub]):
        if isinstance(item, str):
            publishes.append(Publish(item))
        elif isinstance(item, dict) and isinstance(item.get("one_of"), list):
            choices = [
                c for c in item["one_of"] if isinstance(c, dict) and isinstance(c.get("topic"), str)
            ]
            if len(choices) != len(item["one_of"]) or not choices:
                v.problems.append(
                    Problem(
                        f"{p}.publish[{i}].one_of", item["one_of"], "must list {topic, p} entries"
                    )
                )
                continue
            ps = [
                v.number(c, "p", f"{p}.publish[{i}].one_of[{j}].p", maximum=1.0)
                for j, c in enumerate(choices)
            ]
            if sum(ps) > 1 + 1e-9:
                v.problems.append(
                    Problem(f"{p}.publish[{i}].one_of", sum(ps), "probabilities must sum to <= 1")
                )
            publishes += [
                Publish(c["topic"], pc, group=i) for c, pc in zip(choices, ps, strict=True)
            ]
        elif isinstance(item, dict) and isinstance(item.get("topic"), str):
            publishes.append(
                Publish(
                    item["topic"],
                    v.number(item, "p", f"{p}.publish[{i}].p", default=1.0, maximum=1.0),
                )
            )
        else:
            v.problems.append(
                Problem(f"{p}.publish[{i}]", item, "must be a topic name or {topic, p}")
            )
    return Service(
        name=name,
        workers=v.integer(s, "workers", f"{p}.workers", default=1),
        service_time=parse_distribution(s.get("service_time"), f"{p}.service_time", v.problems),
        partitions=v.integer(s, "partitions", f"{p}.partitions", default=1),
        error_rate=v.number(s, "error_rate", f"{p}.error_rate", default=0.0, maximum=1.0),
        calls=tuple(calls),
        publishes=tuple(publishes),
        consumes=v.names(s.get("consumes"), f"{p}.consumes"),
    )


def _call(c: object, p: str, v: _Validator) -> Call:
    c = v.mapping(c, p)
    if "to" in c:
        targets = v.names(c["to"], f"{p}.to")[:1]
    elif "fanout" in c:
        fan = c["fanout"]
        if isinstance(fan, str):
            targets = (fan,) * v.integer(c, "n", f"{p}.n", default=1)
        else:
            targets = v.names(fan, f"{p}.fanout")
    else:
        v.problems.append(Problem(p, c, "needs 'to' (one callee) or 'fanout' (several)"))
        targets = ()
    join_raw = c.get("join", "all")
    if join_raw == "all":
        join = len(targets)
    elif (
        isinstance(join_raw, dict)
        and isinstance(join_raw.get("first"), int)
        and 1 <= join_raw["first"] <= max(1, len(targets))
    ):
        join = join_raw["first"]
    else:
        v.problems.append(
            Problem(f"{p}.join", join_raw, "must be 'all' or {first: k} with 1 <= k <= fan-out")
        )
        join = len(targets)
    timeout = c.get("timeout")
    return Call(
        targets=targets,
        join=join,
        timeout=None if timeout is None else v.number(c, "timeout", f"{p}.timeout", positive=True),
        retries=v.integer(c, "retries", f"{p}.retries", default=0, minimum=0),
        backoff=v.number(c, "backoff", f"{p}.backoff", default=0.0),
        multiplier=v.number(c, "multiplier", f"{p}.multiplier", positive=True, default=2.0),
    )


def _cross_check(
    p: str,
    services: Mapping[str, Service],
    topics: Mapping[str, Any],
    read_models: Mapping[str, ReadModel],
    entries: set[str],
    v: _Validator,
) -> None:
    published = {pub.topic for s in services.values() for pub in s.publishes} | (
        entries & set(topics)
    )
    for s in services.values():
        for i, call in enumerate(s.calls):
            for t in call.targets:
                if t not in services:
                    v.problems.append(
                        Problem(
                            f"{p}.services.{s.name}.calls[{i}]",
                            t,
                            "must call a service of this topology",
                        )
                    )
                if t == s.name:
                    v.problems.append(
                        Problem(
                            f"{p}.services.{s.name}.calls[{i}]", t, "a service cannot call itself"
                        )
                    )
        for topic in s.consumes:
            if topic not in published:
                v.problems.append(
                    Problem(
                        f"{p}.services.{s.name}.consumes", topic, "no service publishes this topic"
                    )
                )
    for r in read_models.values():
        for topic in r.consumes:
            if topic not in published:
                v.problems.append(
                    Problem(
                        f"{p}.read_models.{r.name}.consumes",
                        topic,
                        "no service publishes this topic",
                    )
                )
    for topic in topics:
        if topic not in published:
            v.problems.append(
                Problem(f"{p}.topics.{topic}", topic, "no service publishes this topic")
            )
    _check_acyclic_calls(p, services, v)


def _check_acyclic_calls(p: str, services: Mapping[str, Service], v: _Validator) -> None:
    state: dict[str, int] = {}

    def visit(name: str, trail: Sequence[str]) -> None:
        if state.get(name) == 2 or name not in services:
            return
        if state.get(name) == 1:
            v.problems.append(
                Problem(
                    f"{p}.services",
                    " -> ".join([*trail, name]),
                    "synchronous calls must not form a cycle",
                )
            )
            return
        state[name] = 1
        for call in services[name].calls:
            for t in set(call.targets):
                visit(t, [*trail, name])
        state[name] = 2

    for name in services:
        visit(name, [])


def _faults(
    spec: object, v: _Validator, topologies: Mapping[str, Topology], duration: float
) -> list[Fault]:
    out: list[Fault] = []
    if not isinstance(spec, list):
        v.problems.append(Problem("faults", spec, "must be a list"))
        return out
    for i, f in enumerate(spec):
        p = f"faults[{i}]"
        f = v.mapping(f, p)
        service = f.get("service")
        if topologies and not any(service in t.services for t in topologies.values()):
            v.problems.append(
                Problem(f"{p}.service", service, "must name a service of some topology")
            )
        start = v.number(f, "start", f"{p}.start")
        end = v.number(f, "end", f"{p}.end")
        if end <= start:
            v.problems.append(Problem(f"{p}.end", end, "must be > start"))
        if "slowdown" in f:
            out.append(
                Fault(
                    str(service),
                    "slowdown",
                    start,
                    end,
                    v.number(f, "slowdown", f"{p}.slowdown", positive=True),
                )
            )
        elif f.get("outage") is True:
            out.append(Fault(str(service), "outage", start, end))
        else:
            v.problems.append(Problem(p, f, "needs 'slowdown: factor' or 'outage: true'"))
    return out


def _auto_chunk(workloads: Sequence[Workload], duration: float) -> float:
    """Arrival windows of ~200k arrivals (whole minutes): few NumPy calls, bounded memory."""
    rate = sum(w.mean_rate for w in workloads) or 1.0
    minutes = max(1, round(200_000 / rate / 60))
    return float(min(minutes * 60, max(60, math.ceil(duration / 60) * 60)))
