"""Load and validate a scenario YAML file into `sim.topology.Scenario`.

Every problem is collected into one `ConfigError` whose subject is the file
and whose problems name the YAML path (``topologies.event.services.cart.workers``),
the value and the rule broken, each problem once, so a user fixes the whole
file in one go. Unknown keys are errors with a did-you-mean (the allowed keys
are the tables in `sim.schema`, also published as a JSON Schema). A file that
is not UTF-8, not YAML or nested deeper than `MAX_DEPTH` is a ConfigError too.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from polybus.core.config import unknown_key_rule
from polybus.core.errors import ConfigError, Problem
from polybus.sim import schema
from polybus.sim.distributions import parse_distribution
from polybus.sim.profiles import providers
from polybus.sim.topology import (
    ENGINES,
    PATTERNS,
    Call,
    Exercise,
    Fault,
    Host,
    Publish,
    ReadModel,
    Scenario,
    Service,
    Speed,
    Topology,
    Workload,
)

MAX_DEPTH = 32


def load_scenario(path: str | Path, overrides: Mapping[str, object] | None = None) -> Scenario:
    """Read `path`, apply dotted-path `overrides` (e.g. ``workload.checkout.rate``), validate."""
    path = Path(path)
    return parse_scenario(read_yaml(path), str(path), overrides)


def read_yaml(path: Path) -> object:
    """The YAML document in `path`; a ConfigError when unreadable, not UTF-8, not YAML or too deep."""

    def fail(rule: str) -> ConfigError:
        return ConfigError(str(path), [Problem("<file>", str(path), rule)])

    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise fail(f"is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise fail(f"is not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise fail(f"is nested too deeply (at most {MAX_DEPTH} levels)") from exc
    if _depth(raw) > MAX_DEPTH:
        raise fail(f"is nested too deeply (at most {MAX_DEPTH} levels)")
    return raw


def _depth(doc: object) -> int:
    """Nesting depth of mappings and lists, without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, d)
            if d > MAX_DEPTH:
                return d
            items = node.values() if isinstance(node, dict) else node
            stack.extend((child, d + 1) for child in items)
    return deepest


_SEGMENT = re.compile(r"\[(\d+)\]")


def path_segments(dotted: str) -> list[str | int]:
    """``a.b[0].c`` or ``a.b.0.c`` -> ['a', 'b', 0, 'c']."""
    out: list[str | int] = []
    for part in _SEGMENT.sub(r".\1", dotted).split("."):
        out.append(int(part) if part.isdigit() else part)
    return out


def _render(segments: Sequence[str | int]) -> str:
    text = ""
    for seg in segments:
        text += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if text else seg)
    return text


def apply_override(raw: dict[str, Any], dotted: str, value: object) -> list[Problem]:
    """Set the value at `dotted` (``a.b.c``, list items as ``calls.0`` or ``calls[0]``); a Problem if a parent is missing."""
    segs = path_segments(dotted)
    if any(s == "" for s in segs):
        return [
            Problem(dotted, value, "override path must be dotted keys, e.g. workload.checkout.rate")
        ]
    node: Any = raw
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        where = _render(segs[:i]) or "the top level"
        if isinstance(seg, int):
            if not isinstance(node, list) or not -len(node) <= seg < len(node):
                n = len(node) if isinstance(node, list) else 0
                return [
                    Problem(
                        dotted,
                        value,
                        f"override path does not exist: {where} has {n} item(s), no [{seg}]",
                    )
                ]
        elif not isinstance(node, dict):
            return [
                Problem(dotted, value, f"override path does not exist: {where} is not a mapping")
            ]
        elif not last and seg not in node:
            return [
                Problem(dotted, value, f"override path does not exist: {_near(seg, node, where)}")
            ]
        if last:
            node[seg] = value
        else:
            node = node[seg]
    return []


def _near(key: str, node: Mapping[str, Any], where: str) -> str:
    close = difflib.get_close_matches(key, [str(k) for k in node], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{where} has no {key!r}{hint}"


def parse_scenario(
    raw: object, file: str = "<scenario>", overrides: Mapping[str, object] | None = None
) -> Scenario:
    """Validate an already-parsed YAML document; raise ConfigError listing every problem once."""
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        raise ConfigError(file, [Problem("<root>", type(raw).__name__, "must be a mapping")])
    raw = copy.deepcopy(raw)
    for dotted, value in (overrides or {}).items():
        problems += apply_override(raw, dotted, value)
    if problems:
        raise ConfigError(file, problems)
    v = _Validator(problems)
    v.keys(raw, "", schema.ROOT)
    duration = v.number(raw, "duration", "duration", positive=True, default=600.0)
    warmup = v.number(raw, "warmup", "warmup", default=0.0)
    if v.ok("duration", "warmup") and warmup >= duration:
        problems.append(Problem("warmup", warmup, f"must be < duration ({duration:g})"))
    provider = raw.get("provider", "local")
    if provider not in providers():
        problems.append(Problem("provider", provider, f"must be one of {', '.join(providers())}"))
    engine = raw.get("engine", "auto")
    if engine not in ENGINES:
        problems.append(Problem("engine", engine, f"must be one of {', '.join(ENGINES)}"))
    for key in ("name", "description", "lesson"):
        if key in raw and not isinstance(raw[key], str):
            problems.append(Problem(key, raw[key], "must be a string"))
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
            topologies[str(name)] = _topology(str(name), spec, f"topologies.{name}", flows, v)
    faults = _faults(raw.get("faults", []), v, topologies)
    grid = raw.get("stale_grid", [0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0])
    if not isinstance(grid, list) or not all(v.is_num(x) and x >= 0 for x in grid):
        problems.append(Problem("stale_grid", grid, "must be a list of seconds >= 0"))
        grid = []
    exercises = _exercises(raw.get("exercises", []), v, topologies)
    replications = v.integer(raw, "replications", "replications", default=5)
    seed = v.integer(raw, "seed", "seed", default=1, minimum=0)
    sample_interval = v.number(
        raw, "sample_interval", "sample_interval", positive=True, default=1.0
    )
    chunk = v.number(raw, "chunk", "chunk", positive=True, default=_auto_chunk(workloads, duration))
    if problems:
        raise ConfigError(file, problems)
    return Scenario(
        name=str(raw.get("name", Path(file).stem)),
        file=file,
        duration=duration,
        warmup=warmup,
        replications=replications,
        seed=seed,
        workloads=tuple(workloads),
        topologies=topologies,
        faults=tuple(faults),
        provider=str(provider),
        description=" ".join(str(raw.get("description", "")).split()),
        sample_interval=sample_interval,
        stale_grid=tuple(float(x) for x in grid),
        engine=str(engine),
        chunk=chunk,
        lesson=" ".join(str(raw.get("lesson", "")).split()),
        exercises=tuple(exercises),
        raw=raw,
    )


class _Validator:
    """Small typed getters that record a Problem instead of raising, and remember which paths failed."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.bad: set[str] = set()
        self.unknown: dict[int, list[str]] = {}

    def fail(self, path: str, value: object, rule: str) -> None:
        """Record one problem at `path`."""
        self.bad.add(path)
        self.problems.append(Problem(path, value, rule))

    def required(self, spec: Mapping[str, Any], key: str, path: str, what: str = "") -> None:
        """A missing key: 'is required', unless a misspelt key already reported stands for it."""
        self.bad.add(path)
        unknown = self.unknown.get(id(spec), ())
        if difflib.get_close_matches(key, unknown, n=1):
            return
        self.problems.append(Problem(path, None, f"is required{what}"))

    def ok(self, *paths: str) -> bool:
        """True when none of `paths` has failed (so a cross-check on them is meaningful)."""
        return not any(p in self.bad for p in paths)

    @staticmethod
    def is_num(x: object) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    def keys(self, spec: Mapping[str, Any], path: str, allowed: Mapping[str, Any]) -> None:
        """An unknown-key problem (with a did-you-mean) for every key not in `allowed`."""
        for key, value in spec.items():
            if key not in allowed:
                self.unknown.setdefault(id(spec), []).append(str(key))
                where = f"{path}.{key}" if path else str(key)
                self.fail(where, value, unknown_key_rule(str(key), allowed))

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
            self.required(spec, key, path)
            return 0.0
        if not self.is_num(value) or value < 0 or (positive and value <= 0):
            self.fail(path, value, "must be a number > 0" if positive else "must be a number >= 0")
            return 0.0
        if maximum is not None and value > maximum:
            self.fail(path, value, f"must be <= {maximum:g}")
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
            self.fail(path, value, f"must be an integer >= {minimum}")
            return minimum
        return value

    def mapping(
        self, value: object, path: str, allowed: Mapping[str, Any] | None = None
    ) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, value, "must be a mapping")
            return {}
        if allowed is not None:
            self.keys(value, path, allowed)
        return value

    def names(self, value: object, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            return tuple(value)
        self.fail(path, value, "must be a name or a list of names")
        return ()


def _workloads(spec: object, v: _Validator) -> list[Workload]:
    out: list[Workload] = []
    if not isinstance(spec, dict) or not spec:
        v.fail("workload", spec, "must be a non-empty mapping of flow name to arrivals")
        return out
    for flow, w in spec.items():
        p = f"workload.{flow}"
        w = v.mapping(w, p, schema.WORKLOAD)
        pattern = w.get("pattern", "poisson")
        if pattern not in PATTERNS:
            v.fail(f"{p}.pattern", pattern, f"must be one of {', '.join(PATTERNS)}")
            continue
        devices = v.integer(w, "devices", f"{p}.devices", default=0, minimum=0)
        rate = 0.0
        if pattern in ("poisson", "diurnal"):
            if "rate_per_device" in w:
                if v.ok(f"{p}.devices") and devices < 1:
                    v.fail(f"{p}.devices", devices, "must be >= 1 with rate_per_device")
                rate = devices * v.number(
                    w, "rate_per_device", f"{p}.rate_per_device", positive=True
                )
            else:
                rate = v.number(w, "rate", f"{p}.rate", positive=True)
        elif v.ok(f"{p}.devices") and devices < 1:
            v.fail(f"{p}.devices", devices, f"must be >= 1 for pattern {pattern}")
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
    spec = v.mapping(spec, p, schema.TOPOLOGY)
    services: dict[str, Service] = {}
    for sname, s in v.mapping(spec.get("services"), f"{p}.services").items():
        services[str(sname)] = _service(str(sname), s, f"{p}.services.{sname}", v)
    read_models: dict[str, ReadModel] = {}
    for rname, r in v.mapping(spec.get("read_models", {}), f"{p}.read_models").items():
        rp = f"{p}.read_models.{rname}"
        r = v.mapping(r, rp, schema.READ_MODEL)
        since = r.get("since", "event")
        if since not in ("event", "flow"):
            v.fail(f"{rp}.since", since, "must be 'event' or 'flow'")
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
        str(k): _topic_overrides(t, f"{p}.topics.{k}", v)
        for k, t in v.mapping(spec.get("topics", {}), f"{p}.topics").items()
    }
    entry = v.mapping(spec.get("entry"), f"{p}.entry")
    if v.ok(f"{p}.entry"):
        for flow in sorted(flows - set(entry)):
            v.fail(f"{p}.entry", flow, "every workload flow needs an entry service")
    for flow, target in entry.items():
        if target not in services and target not in topics:
            v.fail(
                f"{p}.entry.{flow}",
                target,
                "must name a service or a declared topic of this topology",
            )
    provider = spec.get("provider")
    if provider is not None and provider not in providers():
        v.fail(f"{p}.provider", provider, f"must be one of {', '.join(providers())}")
    _cross_check(p, services, topics, read_models, set(entry.values()), v)
    speed = None if spec.get("speed") is None else _speed(spec["speed"], f"{p}.speed", v)
    hosts = {}
    for hname, h in v.mapping(spec.get("hosts", {}), f"{p}.hosts").items():
        h = v.mapping(h, f"{p}.hosts.{hname}", schema.HOST)
        bus = h.get("in_process_bus", False)
        if not isinstance(bus, bool):
            v.fail(f"{p}.hosts.{hname}.in_process_bus", bus, "must be true or false")
        cpus = v.integer(h, "cpus", f"{p}.hosts.{hname}.cpus")
        hosts[str(hname)] = Host(str(hname), cpus, bus is True)
    for sname, svc in services.items():
        if svc.host is not None and svc.host not in hosts:
            v.fail(
                f"{p}.services.{sname}.host", svc.host,
                _choice("must name one of the topology's hosts", svc.host, hosts),
            )  # fmt: skip
    return Topology(name, dict(entry), services, topics, read_models, provider, speed, hosts)


def _speed(spec: object, p: str, v: _Validator) -> Speed:
    s = v.mapping(spec, p, schema.SPEED)
    return Speed(
        sigma=v.number(s, "sigma", f"{p}.sigma", maximum=3.0),
        correlation_time=v.number(s, "correlation_time", f"{p}.correlation_time", positive=True),
    )


def _topic_overrides(spec: object, p: str, v: _Validator) -> dict[str, Any]:
    """A topic's profile overrides, each checked (a bad value would otherwise fail mid-run)."""
    t = v.mapping(spec or {}, p, schema.TOPIC)
    for key, value in t.items():
        where = f"{p}.{key}"
        if key in schema.TOPIC_INTEGERS:
            v.integer(t, key, where, minimum=0)
        elif key in schema.TOPIC_NUMBERS:
            v.number(t, key, where)
        elif key in ("publish_quota", "delivery_quota") and value is not None:
            v.number(t, key, where, positive=True)
        elif key in ("publish_latency", "delivery_latency"):
            parse_distribution(value, where, v.problems)
        elif key == "provider" and value not in providers():
            v.fail(where, value, f"must be one of {', '.join(providers())}")
        elif key == "pricing" and not isinstance(value, dict):
            v.fail(where, value, "must be a mapping")
    return dict(t)


def _service(name: str, s: object, p: str, v: _Validator) -> Service:
    s = v.mapping(s, p, schema.SERVICE)
    calls: list[Call] = []
    raw_calls = s.get("calls", [])
    if not isinstance(raw_calls, list):
        v.fail(f"{p}.calls", raw_calls, "must be a list")
        raw_calls = []
    for i, c in enumerate(raw_calls):
        calls.append(_call(c, f"{p}.calls[{i}]", v))
    publishes: list[Publish] = []
    raw_pub = s.get("publish", [])
    for i, item in enumerate(raw_pub if isinstance(raw_pub, list) else [raw_pub]):
        publishes += _publish(item, f"{p}.publish[{i}]", i, v)
    if "service_time" not in s:
        v.required(s, "service_time", f"{p}.service_time", " (seconds, or a distribution)")
    consumes = v.names(s.get("consumes"), f"{p}.consumes")
    join = s.get("join")
    if join is not None and join != "all":
        v.fail(f"{p}.join", join, "must be 'all' (wait for one event of every consumed topic)")
    elif join == "all" and len(set(consumes)) < 2 and v.ok(f"{p}.consumes"):
        v.fail(
            f"{p}.join", join,
            f"needs a service consuming 2 or more topics (consumes: {list(consumes)})",
        )  # fmt: skip
    return Service(
        name=name,
        workers=v.integer(s, "workers", f"{p}.workers", default=1),
        service_time=parse_distribution(
            s.get("service_time", 0.0), f"{p}.service_time", v.problems
        ),
        partitions=v.integer(s, "partitions", f"{p}.partitions", default=1),
        error_rate=v.number(s, "error_rate", f"{p}.error_rate", default=0.0, maximum=1.0),
        calls=tuple(calls),
        publishes=tuple(publishes),
        consumes=consumes,
        join=join == "all",
        settle_time=None
        if s.get("settle_time") is None
        else parse_distribution(s["settle_time"], f"{p}.settle_time", v.problems),
        host=None if s.get("host") is None else str(s["host"]),
    )


def _publish(item: object, p: str, group: int, v: _Validator) -> list[Publish]:
    if isinstance(item, str):
        return [Publish(item)]
    if isinstance(item, dict) and "one_of" in item:
        v.keys(item, p, schema.ONE_OF)
        raw = item["one_of"]
        if not isinstance(raw, list) or not raw:
            v.fail(f"{p}.one_of", raw, "must be a non-empty list of {topic, p}")
            return []
        out = []
        for j, c in enumerate(raw):
            cp = f"{p}.one_of[{j}]"
            c = v.mapping(c, cp, schema.PUBLISH)
            if not isinstance(c.get("topic"), str):
                v.fail(f"{cp}.topic", c.get("topic"), "is required (a topic name)")
                continue
            out.append(Publish(c["topic"], v.number(c, "p", f"{cp}.p", maximum=1.0), group=group))
        total = sum(o.p for o in out)
        if total > 1 + 1e-9:
            v.fail(f"{p}.one_of", total, "probabilities must sum to <= 1")
        return out
    if isinstance(item, dict):
        v.keys(item, p, schema.PUBLISH)
        if not isinstance(item.get("topic"), str):
            v.fail(f"{p}.topic", item.get("topic"), "is required (a topic name)")
            return []
        return [Publish(item["topic"], v.number(item, "p", f"{p}.p", default=1.0, maximum=1.0))]
    v.fail(p, item, "must be a topic name, {topic, p} or {one_of: [...]}")
    return []


def _call(c: object, p: str, v: _Validator) -> Call:
    c = v.mapping(c, p, schema.CALL)
    if "to" in c:
        targets = v.names(c["to"], f"{p}.to")[:1]
    elif "fanout" in c:
        fan = c["fanout"]
        if isinstance(fan, str):
            targets = (fan,) * v.integer(c, "n", f"{p}.n", default=1)
        else:
            targets = v.names(fan, f"{p}.fanout")
    else:
        if c or v.ok(p):
            v.fail(p, c, "needs 'to' (one callee) or 'fanout' (several)")
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
        v.fail(f"{p}.join", join_raw, "must be 'all' or {first: k} with 1 <= k <= fan-out")
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
            for t in dict.fromkeys(call.targets):
                if t == s.name:
                    v.fail(f"{p}.services.{s.name}.calls[{i}]", t, "a service cannot call itself")
                elif t not in services:
                    v.fail(
                        f"{p}.services.{s.name}.calls[{i}]", t,
                        _choice("must call a service of this topology", t, services),
                    )  # fmt: skip
        for topic in s.consumes:
            if topic not in published:
                v.fail(
                    f"{p}.services.{s.name}.consumes", topic,
                    _choice("no service publishes this topic", topic, published),
                )  # fmt: skip
    for r in read_models.values():
        for topic in r.consumes:
            if topic not in published:
                v.fail(
                    f"{p}.read_models.{r.name}.consumes", topic,
                    _choice("no service publishes this topic", topic, published),
                )  # fmt: skip
    for topic in topics:
        if topic not in published:
            v.fail(f"{p}.topics.{topic}", topic, "no service publishes this topic")
    _check_acyclic_calls(p, services, v)


def _choice(rule: str, name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"{rule}; did you mean {close[0]!r}?" if close else rule


def _check_acyclic_calls(p: str, services: Mapping[str, Service], v: _Validator) -> None:
    state: dict[str, int] = {}

    def visit(name: str, trail: Sequence[str]) -> None:
        if state.get(name) == 2 or name not in services:
            return
        if state.get(name) == 1:
            v.fail(
                f"{p}.services",
                " -> ".join([*trail, name]),
                "synchronous calls must not form a cycle",
            )
            return
        state[name] = 1
        for call in services[name].calls:
            for t in set(call.targets):
                if t != name:
                    visit(t, [*trail, name])
        state[name] = 2

    for name in services:
        visit(name, [])


def _faults(spec: object, v: _Validator, topologies: Mapping[str, Topology]) -> list[Fault]:
    out: list[Fault] = []
    if not isinstance(spec, list):
        v.fail("faults", spec, "must be a list")
        return out
    for i, f in enumerate(spec):
        p = f"faults[{i}]"
        f = v.mapping(f, p, schema.FAULT)
        if not f:
            continue
        service = f.get("service")
        known = {n for t in topologies.values() for n in t.services}
        if topologies and service not in known:
            v.fail(
                f"{p}.service",
                service,
                _choice("must name a service of some topology", str(service), known),
            )
        start = v.number(f, "start", f"{p}.start")
        end = v.number(f, "end", f"{p}.end")
        if v.ok(f"{p}.start", f"{p}.end") and end <= start:
            v.fail(f"{p}.end", end, f"must be > start ({start:g})")
        if "slowdown" in f:
            factor = v.number(f, "slowdown", f"{p}.slowdown", positive=True)
            out.append(Fault(str(service), "slowdown", start, end, factor))
        elif f.get("outage") is True:
            out.append(Fault(str(service), "outage", start, end))
        else:
            v.fail(p, f, "needs 'slowdown: factor' or 'outage: true'")
    return out


def _exercises(spec: object, v: _Validator, topologies: Mapping[str, Topology]) -> list[Exercise]:
    out: list[Exercise] = []
    if not isinstance(spec, list):
        v.fail("exercises", spec, "must be a list")
        return out
    for i, e in enumerate(spec):
        p = f"exercises[{i}]"
        e = v.mapping(e, p, schema.EXERCISE)
        if not e:
            continue
        for key in ("question", "change", "topology", "metric", "expect"):
            if key not in e:
                v.required(e, key, f"{p}.{key}")
        for key in ("question", "metric", "answer", "unit"):
            if key in e and not isinstance(e[key], str):
                v.fail(f"{p}.{key}", e[key], "must be a string")
        change = v.mapping(e.get("change", {}), f"{p}.change")
        expect = v.mapping(e.get("expect", {}), f"{p}.expect", dict.fromkeys(schema.CHECKS))
        for key, bound in expect.items():
            if key in schema.CHECKS and not v.is_num(bound):
                v.fail(f"{p}.expect.{key}", bound, "must be a number")
        topology = e.get("topology")
        if topologies and topology is not None and topology not in topologies:
            v.fail(f"{p}.topology", topology, f"must be one of {', '.join(topologies)}")
        duration = (
            v.number(e, "duration", f"{p}.duration", positive=True) if "duration" in e else None
        )
        warmup = v.number(e, "warmup", f"{p}.warmup") if "warmup" in e else None
        out.append(
            Exercise(
                question=" ".join(str(e.get("question", "")).split()),
                change=dict(change),
                topology=str(topology),
                metric=str(e.get("metric", "")),
                expect={k: float(b) for k, b in expect.items() if v.is_num(b)},
                answer=" ".join(str(e.get("answer", "")).split()),
                duration=duration,
                warmup=warmup,
                replications=v.integer(e, "replications", f"{p}.replications", default=3),
                unit=e.get("unit") if isinstance(e.get("unit"), str) else None,
            )
        )
    return out


def _auto_chunk(workloads: Sequence[Workload], duration: float) -> float:
    """Arrival windows of ~200k arrivals (whole minutes): few NumPy calls, bounded memory."""
    rate = sum(w.mean_rate for w in workloads) or 1.0
    minutes = max(1, round(200_000 / rate / 60))
    return float(min(minutes * 60, max(60, math.ceil(duration / 60) * 60)))
