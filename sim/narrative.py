"""The words of a report, computed from a run document: headline, scenario text and assumptions.

Nothing here is hard-coded prose about a scenario: each sentence of the
headline is built from the numbers of the document (schema ``polybus.sim/1``,
docs/sim.md), so it cannot drift from the measurement. Fields other helpers may
add to the document (overload flags, a scenario description or lesson) are
read when present and never required.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from polybus.core.errors import ConfigError

SAME = 1.05  # ratios within 5% read as "about the same"
ESTIMATE = re.compile(r"no published|assum", re.IGNORECASE)


@dataclass(frozen=True)
class Assumption:
    """One input figure of the model: where it applies, its value, and whether it is published or estimated."""

    where: str
    field: str
    value: str
    kind: str  # "published", "estimate" or "scenario input"
    source: str
    read: str = ""


@dataclass(frozen=True)
class ScenarioText:
    """The scenario's own description and lesson ('' when it has none)."""

    description: str
    lesson: str


def as_document(doc: object) -> Mapping[str, Any]:
    """The JSON form of a run document: a mapping as is, or a typed result's ``to_json()``."""
    if isinstance(doc, Mapping):
        return doc
    to_json = getattr(doc, "to_json", None)
    if callable(to_json):
        out = to_json()
        if isinstance(out, Mapping):
            return out
    raise TypeError(f"not a run document: {type(doc).__name__}")


def faults_of(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The run's fault records (an empty list however an absent list was written)."""
    faults = run.get("faults")
    return [f for f in faults if isinstance(f, Mapping)] if isinstance(faults, list) else []


def mean(stat: object) -> float | None:
    """The mean of a summary (or a bare number); None when undefined."""
    value = stat.get("mean") if isinstance(stat, Mapping) else stat
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def halfwidth(stat: object) -> float | None:
    """The 95% CI half-width of a summary; None with one replication."""
    value = stat.get("halfwidth") if isinstance(stat, Mapping) else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def seconds(v: float | None) -> str:
    """A duration for prose: '26 ms', '1.4 s', '-' when undefined."""
    if v is None:
        return "-"
    if abs(v) >= 1:
        return f"{v:.2g} s" if abs(v) < 10 else f"{v:,.0f} s"
    ms = v * 1000
    return f"{ms:.2g} ms" if ms < 10 else f"{ms:.0f} ms"


def dollars(v: float) -> str:
    """A monthly amount for prose: '$38', '$17,279', '$0.42'."""
    return f"${v:,.0f}" if abs(v) >= 10 else f"${v:,.2f}"


def percent(v: float | None) -> str:
    """A fraction as a percentage for prose ('-' when undefined)."""
    if v is None:
        return "-"
    return f"{v * 100:.0f}%" if 0.01 <= abs(v) <= 0.99 or v in (0, 1) else f"{v * 100:.2g}%"


def by_topology(runs: Mapping[str, Any]) -> dict[str, list[str]]:
    """Run keys grouped by topology, in document order."""
    out: dict[str, list[str]] = {}
    for key, run in runs.items():
        out.setdefault(str(run.get("topology", key.split("@")[0])), []).append(key)
    return out


def _ratio_phrase(verb: str, base: float, other: float, hw: float, faster: str, slower: str) -> str:
    """'answers 3.1x sooner', or 'answers about as fast' when within 5% or the CIs overlap."""
    if (
        base <= 0
        or other <= 0
        or abs(other - base) <= hw
        or max(base, other) / min(base, other) < SAME
    ):
        return f"{verb} about as fast"
    ratio = max(base, other) / min(base, other)
    times = f"{ratio:.1f}x" if ratio < 10 else f"{ratio:,.0f}x"
    return f"{verb} {times} {faster if other < base else slower}"


def _compare(runs: Mapping[str, Any], base_key: str, other_key: str, label: str) -> str | None:
    """One sentence comparing `other_key`'s first shared flow with `base_key`'s (mean response, completion)."""
    base, other = runs[base_key], runs[other_key]
    flows = [f for f in other.get("flows", {}) if f in base.get("flows", {})]
    if not flows:
        return None
    flow = flows[0]
    b, o = base["flows"][flow], other["flows"][flow]
    br, orr = mean(b["latency"]["mean"]), mean(o["latency"]["mean"])
    bc, oc = mean(b["completion"]["mean"]), mean(o["completion"]["mean"])
    if br is None or orr is None:
        return None
    hw_r = (halfwidth(b["latency"]["mean"]) or 0) + (halfwidth(o["latency"]["mean"]) or 0)
    text = (
        f"The {label} {_ratio_phrase('answers', br, orr, hw_r, 'sooner', 'later')} than "
        f"{base['topology']} (mean {flow} response {seconds(orr)} vs {seconds(br)})"
    )
    if bc is not None and oc is not None:
        hw_c = (halfwidth(b["completion"]["mean"]) or 0) + (halfwidth(o["completion"]["mean"]) or 0)
        text += (
            f" and {_ratio_phrase('completes', bc, oc, hw_c, 'sooner', 'later')}"
            f" (mean completion {seconds(oc)} vs {seconds(bc)})"
        )
    return text + "."


def _cost_sentence(runs: Mapping[str, Any]) -> str | None:
    """The cheapest provider of each brokered topology, with the others' bills."""
    sentences = []
    for top, keys in by_topology(runs).items():
        billed = {
            runs[k]["provider"]: float(runs[k]["cost"]["total"])
            for k in keys
            if runs[k].get("topics") and "cost" in runs[k]
        }
        if not billed or not any(billed.values()):
            continue
        if len(billed) == 1:
            ((prov, usd),) = billed.items()
            sentences.append(f"The {top} topology's broker costs {dollars(usd)}/month on {prov}.")
            continue
        order = sorted(billed, key=lambda p: billed[p])
        cheapest = order[0]
        rest = ", ".join(f"{p} {dollars(billed[p])}" for p in order[1:])
        sentences.append(
            f"{cheapest} is cheapest for the {top} topology at {dollars(billed[cheapest])}/month ({rest})."
        )
    return " ".join(sentences) or None


def overload_notes(key: str, run: Mapping[str, Any]) -> list[str]:
    """Overload warnings: flags the runner writes (when it does), and stations at >= 98% utilisation."""
    notes: list[str] = []
    flag = run.get("overload", run.get("overloaded"))
    items = flag if isinstance(flag, list) else [flag] if isinstance(flag, str | Mapping) else []
    for item in items:
        if isinstance(item, str):
            notes.append(f"{key}: {item}")
        elif isinstance(item, Mapping):
            text = item.get("message") or item.get("reason") or item.get("service")
            if text:
                notes.append(f"{key}: {text}")
    flagged = {n for n, s in run.get("services", {}).items() if _flagged(s.get("overloaded"))}
    for name, s in run.get("services", {}).items():
        u = mean(s.get("utilisation"))
        saturated = name in flagged or (u is not None and u >= 0.98)
        if saturated and not any(name in n for n in notes):
            notes.append(
                f"{key}: {name} is saturated ({percent(u)} busy): its response figures are not steady-state"
            )
    return notes


def _flagged(value: object) -> bool:
    if isinstance(value, Mapping):
        return bool(mean(value))
    return value is True or (isinstance(value, str) and bool(value))


def headline(doc: Mapping[str, Any]) -> list[str]:
    """Sentences written from the numbers: topology comparison, cost, failures, throttling, faults, staleness."""
    runs: Mapping[str, Any] = doc["runs"]
    if not runs:
        return ["No run completed."]
    groups = by_topology(runs)
    tops = list(groups)
    out: list[str] = []
    for top in tops[1:]:  # each other topology against the first, on its first provider
        key = groups[top][0]
        label = f"{top} topology" + (f" on {runs[key]['provider']}" if len(groups[top]) > 1 else "")
        sentence = _compare(runs, groups[tops[0]][0], key, label)
        if sentence:
            out.append(sentence)
    cost = _cost_sentence(runs)
    if cost:
        out.append(cost)
    for key, run in runs.items():
        for flow, f in run.get("flows", {}).items():
            ok = mean(f.get("success_rate"))
            if ok is not None and ok < 0.99:
                why = [
                    f"{percent(mean(f.get(k)))} {name}"
                    for k, name in (("timeout_rate", "time out"), ("error_rate", "fail"))
                    if (mean(f.get(k)) or 0) >= 0.005
                ]
                out.append(
                    f"{key}: only {percent(ok)} of {flow} flows succeed"
                    + (f" ({', '.join(why)})." if why else ".")
                )
        for name, t in run.get("topics", {}).items():
            rate = mean(t.get("throttle_rate"))
            if rate is not None and rate >= 0.01:
                failed, published = (
                    mean(t.get("publish_failed")) or 0,
                    mean(t.get("published")) or 0,
                )
                lost = failed / (failed + published) if failed + published else 0
                out.append(
                    f"{key}: {percent(rate)} of publish attempts to {name} are throttled"
                    + (f" and {percent(lost)} of its events are never published." if lost else ".")
                )
        out += [note + "." for note in overload_notes(key, run)]
    out += _fault_sentences(runs)
    out += _staleness_sentences(runs, groups)
    return out


def _fault_sentences(runs: Mapping[str, Any]) -> list[str]:
    """Per fault: the success rate during (and after) the window in each run."""
    faults: dict[tuple[str, str, float, float], list[str]] = {}
    for key, run in runs.items():
        for f in faults_of(run):
            during, after = mean(f["during"]["success_rate"]), mean(f["after"]["success_rate"])
            faults.setdefault((f["service"], f["kind"], f["start"], f["end"]), []).append(
                f"{percent(during)} in {key} ({percent(after)} after)"
            )
    return [
        f"During the {svc} {kind} ({start:.0f}-{end:.0f} s) flows succeeded {', '.join(parts)}."
        for (svc, kind, start, end), parts in faults.items()
    ]


def _staleness_sentences(runs: Mapping[str, Any], groups: Mapping[str, list[str]]) -> list[str]:
    """The consistency window of each read model, from the first run of each topology."""
    out = []
    for keys in groups.values():
        key = keys[0]
        for name, m in runs[key].get("read_models", {}).items():
            p50, p99 = mean(m["window"]["p50"]), mean(m["window"]["p99"])
            if p50 is not None:
                out.append(
                    f"{key}: the {name} view shows a write after {seconds(p50)} at the median and "
                    f"{seconds(p99)} at p99."
                )
    return out


def confidence_note(doc: Mapping[str, Any]) -> str:
    """What the bands and ± figures are, or why there are none."""
    n = int(doc.get("completed_replications", 0))
    if n >= 2:
        return (
            f"Shaded bands and ± figures are 95% confidence intervals (Student t) over {n} independent "
            "replications on common random numbers."
        )
    return (
        f"{n} replication completed: no confidence interval can be computed, so the charts have no "
        "bands and the figures no ±. Run with -r 2 or more for bands."
    )


def _raw_scenario(file: str) -> Mapping[str, Any]:
    try:
        raw = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, Mapping) else {}


def scenario_text(doc: Mapping[str, Any]) -> ScenarioText:
    """The description and lesson: from the document if it carries them, else the scenario file and catalogue."""
    raw = _raw_scenario(str(doc.get("file", "")))
    description = str(doc.get("description") or raw.get("description") or "")
    lesson = str(doc.get("lesson") or raw.get("lesson") or "")
    if not lesson and doc.get("file"):
        lesson = _catalogue_lesson(Path(str(doc["file"])))
    return ScenarioText(" ".join(description.split()), " ".join(lesson.split()))


def _catalogue_lesson(file: Path) -> str:
    """The '**Lesson.**' paragraph of the README section that names `file` (scenarios/README.md)."""
    try:
        readme = (file.parent / "README.md").read_text(encoding="utf-8")
    except OSError:
        return ""
    for section in re.split(r"\n## ", readme):
        if f"`scenarios/{file.name}`" in section or f"`{file.name}`" in section:
            found = re.search(r"\*\*Lesson\.\*\*\s*(.+?)(?:\n\s*\n|$)", section, flags=re.S)
            if found:
                return found.group(1).strip()
    return ""


def _value(v: object) -> str:
    if v is None:
        return "unlimited"
    if isinstance(v, Mapping):
        return ", ".join(f"{k} {_value(x)}" for k, x in v.items())
    if isinstance(v, float) and v.is_integer():
        return f"{v:g}"
    return str(v)


def assumptions(doc: Mapping[str, Any]) -> list[Assumption]:
    """Each broker profile figure the runs used (published, with source, or estimate), then the scenario's inputs."""
    from polybus.sim.broker import profile_sources

    runs: Mapping[str, Any] = doc["runs"]
    out: list[Assumption] = []
    seen: set[str] = set()
    for run in runs.values():
        prov = str(run.get("provider", ""))
        if not run.get("topics") or prov in seen:
            continue
        seen.add(prov)
        try:
            fields = profile_sources(prov)
        except ConfigError:  # an unreadable profile is reported in the table, not fatal
            out.append(Assumption(prov, "profile", "-", "estimate", "profile could not be read"))
            continue
        for name, entry in fields.items():
            source = str(entry.get("source", ""))
            kind = "estimate" if ESTIMATE.search(source) else "published"
            out.append(
                Assumption(
                    prov, name, _value(entry.get("value")), kind, source, str(entry.get("read", ""))
                )
            )
    raw = _raw_scenario(str(doc.get("file", "")))
    tops = raw.get("topologies")
    for top, spec in tops.items() if isinstance(tops, Mapping) else []:
        topics = spec.get("topics") if isinstance(spec, Mapping) else None
        for topic, over in topics.items() if isinstance(topics, Mapping) else []:
            for name, v in over.items() if isinstance(over, Mapping) else []:
                out.append(
                    Assumption(
                        f"{top}/{topic}",
                        name,
                        _value(v),
                        "scenario input",
                        str(doc.get("file", "")),
                    )
                )
    out.append(
        Assumption(
            "scenario", "workload, service times, workers, faults", "see the file", "scenario input",
            f"{doc.get('file', '')}: the scenario author's estimates unless the file cites a source",
        )
    )  # fmt: skip
    return out
