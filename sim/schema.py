"""The keys a scenario file may use, and the JSON Schema built from them (``polybus sim schema``).

One table per kind of mapping (root, workload, topology, service, call, ...)
gives each allowed key and its meaning; the loader rejects any other key with
a did-you-mean, and `scenario_schema()` publishes the same tables as a JSON
Schema (draft 2020-12) so editors can validate and complete scenario files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polybus.sim.topology import ENGINES, PATTERNS

ROOT: Mapping[str, str] = {
    "name": "scenario name (default: the file name)",
    "description": "what the scenario models (shown in reports)",
    "lesson": "the lesson the scenario teaches (shown in reports)",
    "duration": "simulated seconds per replication (default 600)",
    "warmup": "seconds discarded from every statistic (< duration, default 0)",
    "replications": "independent replications (default 5)",
    "seed": "base seed (default 1)",
    "provider": "broker profile: local, aws, azure, gcp, ideal (default local)",
    "engine": "auto (fast path when it applies), simpy or fast",
    "sample_interval": "backlog sampling period, s (default 1)",
    "chunk": "arrival window, s (default: about 200k arrivals)",
    "stale_grid": "read delays (s) of the stale-read curve",
    "faults": "slowdowns and outages",
    "workload": "one arrival process per flow",
    "topologies": "implementations of the flows, by name",
    "exercises": "teaching exercises (polybus sim exercise)",
}
WORKLOAD: Mapping[str, str] = {
    "pattern": "poisson, periodic, burst or diurnal (default poisson)",
    "rate": "arrivals per second in total (poisson, diurnal)",
    "rate_per_device": "arrivals per second per device (poisson, diurnal; with devices)",
    "devices": "device population",
    "period": "reporting period, s (periodic, burst; default 60)",
    "jitter": "+- s around each device's phase (periodic)",
    "spread": "s after the period boundary within which devices report (burst)",
    "amplitude": "relative daily swing, 0..1 (diurnal)",
    "cycle": "cycle length, s (diurnal; default 86400)",
    "peak": "time of the peak, s (diurnal)",
}
TOPOLOGY: Mapping[str, str] = {
    "entry": "flow -> the service or declared topic where it enters",
    "services": "services by name",
    "topics": "topics by name, each overriding provider profile fields",
    "read_models": "projections fed by topics",
    "provider": "this topology's broker profile",
    "hosts": "hosts by name, each {cpus: n}: CPUs their services share",
    "speed": "the host's drifting speed: {sigma, correlation_time} of exp(X(t)) on every time drawn",
}
HOST: Mapping[str, str] = {
    "cpus": "processors shared by the host's services (a Python process: 1)",
    "in_process_bus": "true: the bus runs in this host, so publish and delivery latencies are its CPU work",
}
SPEED: Mapping[str, str] = {
    "sigma": "standard deviation of log(factor), >= 0",
    "correlation_time": "s over which the factor's correlation falls by 1/e, > 0",
}
SERVICE: Mapping[str, str] = {
    "workers": "concurrent workers per partition (default 1)",
    "service_time": "seconds of work per visit (a number or a distribution)",
    "partitions": "FIFO lanes keyed by device or request id (default 1)",
    "error_rate": "probability a visit fails (default 0)",
    "calls": "synchronous steps, in order; the worker is held meanwhile",
    "publish": "topics published after the work",
    "consumes": "topics this service consumes",
    "join": "'all': act (call, publish) once per flow instance, after one event of every consumed topic",
    "settle_time": "seconds a visit that called or published keeps its worker after that (acking)",
    "host": "the host (of the topology's hosts) whose CPUs its work shares",
}
CALL: Mapping[str, str] = {
    "to": "the one service called",
    "fanout": "services called in parallel (a list, or one name with n)",
    "n": "copies of a one-name fanout",
    "join": "'all' or {first: k}",
    "timeout": "s per attempt",
    "retries": "retries after a failed or timed-out attempt (default 0)",
    "backoff": "s before the first retry (default 0)",
    "multiplier": "backoff growth per retry (default 2)",
}
PUBLISH: Mapping[str, str] = {"topic": "topic name", "p": "probability (default 1)"}
ONE_OF: Mapping[str, str] = {"one_of": "exclusive choices [{topic, p}, ...]"}
READ_MODEL: Mapping[str, str] = {
    "consumes": "topics projected",
    "workers": "projector workers (default 1)",
    "projection_time": "seconds per projected event",
    "since": "'event' (the publish) or 'flow' (the originating request) starts the window",
}
TOPIC: Mapping[str, str] = {
    "provider": "broker profile of this topic",
    "publish_latency": "publish call latency (distribution)",
    "delivery_latency": "publish-to-delivery latency (distribution)",
    "publish_quota": "publish requests per second (null: none)",
    "delivery_quota": "deliveries per second (null: none)",
    "batch_size": "events per publisher batch",
    "linger": "s a publisher batch waits to fill",
    "max_attempts": "delivery attempts before dead-lettering",
    "max_age": "s before an undelivered event is dead-lettered",
    "retry_initial": "s before the first redelivery",
    "retry_multiplier": "redelivery backoff growth",
    "retry_max": "longest redelivery backoff, s",
    "throttle_retries": "publisher retries after throttling",
    "throttle_backoff": "s before the first throttled retry",
    "event_bytes": "event size, bytes (for cost)",
    "pricing": "pricing fields of the profile",
}
TOPIC_INTEGERS = ("batch_size", "max_attempts", "throttle_retries", "event_bytes")
TOPIC_NUMBERS = ("linger", "max_age", "retry_initial", "retry_multiplier", "retry_max", "throttle_backoff")  # fmt: skip
FAULT: Mapping[str, str] = {
    "service": "the service affected (in every topology that has it)",
    "start": "s",
    "end": "s (> start)",
    "slowdown": "service-time factor during the fault",
    "outage": "true: the service refuses work",
}
DISTRIBUTIONS: Mapping[str, tuple[str, ...]] = {
    "exponential": ("mean", "rate"),
    "deterministic": ("value",),
    "lognormal": ("median", "sigma", "p99", "mean", "sd"),
    "uniform": ("low", "high"),
    "empirical": ("samples",),
    "mixture": ("components",),
}
EXERCISE: Mapping[str, str] = {
    "question": "what the student is asked",
    "change": "dotted path -> new value, applied to the scenario",
    "topology": "the topology to run",
    "metric": "dotted metric path in a run (e.g. flows.checkout.latency.p99)",
    "expect": "bounds the measurement must meet (baseline_below, ratio_above, ...)",
    "answer": "the explanation; {baseline}, {changed}, {delta}, {ratio} are filled in",
    "unit": "how to show the metric: ms, s, %, /s or a plain number (default: from the metric)",
    "duration": "simulated seconds for this exercise",
    "warmup": "warm-up for this exercise",
    "replications": "replications for this exercise (default 3)",
}
CHECKS = (
    "baseline_below", "baseline_above", "changed_below", "changed_above", "ratio_below", "ratio_above",
)  # fmt: skip

_NUM = {"type": "number", "minimum": 0}
_POS = {"type": "number", "exclusiveMinimum": 0}
_INT1 = {"type": "integer", "minimum": 1}
_INT0 = {"type": "integer", "minimum": 0}
_NAMES = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}


def _obj(
    table: Mapping[str, str], props: Mapping[str, Any], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {k: {**props.get(k, {}), "description": d} for k, d in table.items()},
    }
    if required:
        out["required"] = list(required)
    return out


def _dist_variants(extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    variants = []
    for kind, keys in DISTRIBUTIONS.items():
        props: dict[str, Any] = {"dist": {"const": kind}, **extra}
        for key in keys:
            if key == "samples":
                props[key] = {"type": "array", "items": _NUM, "minItems": 1}
            elif key == "components":
                props[key] = {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/$defs/component"},
                }
            else:
                props[key] = _NUM
        required = ["dist", *extra]
        variants.append(
            {"type": "object", "additionalProperties": False, "properties": props,
             "required": required}
        )  # fmt: skip
    return variants


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file (the loader's key tables; value rules where a schema can say them)."""
    dist = {"anyOf": [_NUM, *_dist_variants({})]}
    ref = {"$ref": "#/$defs/distribution"}
    topic_props: dict[str, Any] = {
        "provider": {"type": "string"},
        "publish_latency": ref,
        "delivery_latency": ref,
        "publish_quota": {"anyOf": [_POS, {"type": "null"}]},
        "delivery_quota": {"anyOf": [_POS, {"type": "null"}]},
        "pricing": {"type": "object"},
        **dict.fromkeys(TOPIC_INTEGERS, _INT0),
        **dict.fromkeys(TOPIC_NUMBERS, _NUM),
    }
    call = _obj(
        CALL,
        {
            "to": {"type": "string"}, "fanout": _NAMES, "n": _INT1,
            "join": {"anyOf": [{"const": "all"}, _obj({"first": "k"}, {"first": _INT1}, ("first",))]},
            "timeout": _POS, "retries": _INT0, "backoff": _NUM, "multiplier": _POS,
        },
    )  # fmt: skip
    choice = _obj(PUBLISH, {"topic": {"type": "string"}, "p": {**_NUM, "maximum": 1}}, ("topic",))
    publish_item = {
        "anyOf": [
            {"type": "string"},
            choice,
            _obj(
                ONE_OF, {"one_of": {"type": "array", "items": choice, "minItems": 1}}, ("one_of",)
            ),
        ]
    }
    service = _obj(
        SERVICE,
        {
            "workers": _INT1, "service_time": ref, "partitions": _INT1,
            "error_rate": {**_NUM, "maximum": 1}, "calls": {"type": "array", "items": call},
            "publish": {"anyOf": [publish_item, {"type": "array", "items": publish_item}]},
            "consumes": _NAMES, "join": {"const": "all"}, "settle_time": ref,
            "host": {"type": "string"},
        },
    )  # fmt: skip
    read_model = _obj(
        READ_MODEL,
        {"consumes": _NAMES, "workers": _INT1, "projection_time": ref,
         "since": {"enum": ["event", "flow"]}},
    )  # fmt: skip
    topology = _obj(
        TOPOLOGY,
        {
            "entry": {"type": "object", "additionalProperties": {"type": "string"}},
            "services": {"type": "object", "additionalProperties": service},
            "topics": {"type": "object", "additionalProperties": {
                "anyOf": [{"type": "null"}, _obj(TOPIC, topic_props)]}},
            "read_models": {"type": "object", "additionalProperties": read_model},
            "provider": {"type": "string"},
            "hosts": {"type": "object", "additionalProperties": _obj(HOST, {"cpus": _INT1, "in_process_bus": {"type": "boolean"}}, ("cpus",))},
            "speed": _obj(SPEED, {"sigma": _NUM, "correlation_time": _POS}, ("sigma", "correlation_time")),
        },
        ("entry", "services"),
    )  # fmt: skip
    workload = _obj(
        WORKLOAD,
        {
            "pattern": {"enum": list(PATTERNS)}, "rate": _POS, "rate_per_device": _POS,
            "devices": _INT0, "period": _POS, "jitter": _NUM, "spread": _POS,
            "amplitude": {**_NUM, "maximum": 1}, "cycle": _POS, "peak": _NUM,
        },
    )  # fmt: skip
    fault = _obj(
        FAULT,
        {"service": {"type": "string"}, "start": _NUM, "end": _NUM, "slowdown": _POS,
         "outage": {"const": True}},
        ("service", "start", "end"),
    )  # fmt: skip
    exercise = _obj(
        EXERCISE,
        {
            "question": {"type": "string"}, "change": {"type": "object"},
            "topology": {"type": "string"}, "metric": {"type": "string"},
            "expect": _obj(dict.fromkeys(CHECKS, "bound"), {k: {"type": "number"} for k in CHECKS}),
            "answer": {"type": "string"}, "unit": {"type": "string"}, "duration": _POS,
            "warmup": _NUM, "replications": _INT1,
        },
        ("question", "change", "topology", "metric", "expect"),
    )  # fmt: skip
    root = _obj(
        ROOT,
        {
            "name": {"type": "string"}, "description": {"type": "string"},
            "lesson": {"type": "string"}, "duration": _POS, "warmup": _NUM,
            "replications": _INT1, "seed": _INT0, "provider": {"type": "string"},
            "engine": {"enum": list(ENGINES)}, "sample_interval": _POS, "chunk": _POS,
            "stale_grid": {"type": "array", "items": _NUM},
            "faults": {"type": "array", "items": fault},
            "workload": {"type": "object", "minProperties": 1, "additionalProperties": workload},
            "topologies": {"type": "object", "minProperties": 1, "additionalProperties": topology},
            "exercises": {"type": "array", "items": exercise},
        },
        ("workload", "topologies"),
    )  # fmt: skip
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://polybus.dev/schemas/sim-scenario.json",
        "title": "polybus simulation scenario",
        **root,
        "$defs": {"distribution": dist, "component": {"anyOf": _dist_variants({"weight": _NUM})}},
    }
