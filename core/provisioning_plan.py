"""What an app's subscriptions need on a provider, as a typed plan, and that plan as IaC text.

Each adapter's provisioning module builds a `ProvisioningPlan` from portable
subscription specs (its registration's `plan` hook): one `Resource` per thing
the adapter would create (topics, buses, rules, queues, subscriptions,
dead-letter targets), with the provider-native settings it would send,
native filters included, and for each infrastructure-as-code format the
adapter supports a `Template` (resource type and arguments). `render` turns a
plan into JSON, Terraform (HCL), CloudFormation (JSON) or Bicep; core knows
only the formats' syntax, never a provider's resource types.

Inside templates, `Ref` points at another resource of the same plan (rendered
``type.key.attr`` in Terraform, ``Ref``/``Fn::GetAtt`` in CloudFormation,
``key.attr`` in Bicep), `Block` marks a Terraform nested block (``name { }``
rather than ``name = { }``) and `JsonText` a value Terraform must
``jsonencode`` (CloudFormation and Bicep take the object itself).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from polybus.core.contract import SubscriptionSpec
from polybus.core.errors import Problem, UnsupportedError
from polybus.core.filters.dialects import Filter
from polybus.core.filters.dialects import to_json as filter_json

FORMATS = ("json", "terraform", "cloudformation", "bicep")
_KEY = re.compile(r"[^a-z0-9_]")


@dataclass(frozen=True)
class Ref:
    """Another resource's attribute: `key` of the resource, `attr` in the format's own terms.

    An empty `attr` is CloudFormation's ``{"Ref": ...}``; other formats need one.
    """

    key: str
    attr: str = ""


@dataclass(frozen=True)
class Block:
    """A Terraform nested block (``dead_letter_policy { ... }``); a plain object elsewhere."""

    body: Mapping[str, Any]


@dataclass(frozen=True)
class JsonText:
    """A value the provider takes as JSON text: ``jsonencode(...)`` in Terraform."""

    value: Any


@dataclass(frozen=True)
class Template:
    """One resource in one IaC format: its type and arguments (Bicep: name and parent too)."""

    type: str  # "": nothing to write in this format (folded into another resource)
    properties: Mapping[str, Any]
    parent: str | None = None  # Bicep: the key of the parent resource
    name: str | None = None  # Bicep: the name when it differs from the resource's (a child's own)
    existing: bool = False  # Bicep: a resource that must already exist (e.g. the namespace)


@dataclass(frozen=True)
class Resource:
    """One thing the adapter creates: kind, provider name, why, native settings, IaC templates."""

    key: str  # unique in the plan, [a-z0-9_]
    kind: str  # "topic", "event-bus", "archive", "rule", "queue", "queue-policy", ...
    name: str  # the provider's name for it
    purpose: str  # the portable topic or subscription that needs it
    properties: Mapping[str, Any] = field(default_factory=dict)
    templates: Mapping[str, Template] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The resource as plain JSON (templates left out: see `render`)."""
        return {
            "key": self.key,
            "kind": self.kind,
            "name": self.name,
            "for": self.purpose,
            "properties": _plain(self.properties),
        }


@dataclass(frozen=True)
class ProvisioningPlan:
    """Everything an app's subscriptions need on one provider, in creation order."""

    provider: str
    resources: tuple[Resource, ...] = ()
    residual_filters: Mapping[str, str] = field(default_factory=dict)  # name -> filter_text
    notes: tuple[str, ...] = ()

    def formats(self) -> tuple[str, ...]:
        """The formats this plan renders to: json, and each IaC format every resource has."""
        iac = [
            f
            for f in FORMATS[1:]
            if self.resources and all(f in r.templates for r in self.resources)
        ]
        return ("json", *iac)

    def to_json(self) -> dict[str, Any]:
        """The plan as plain JSON: provider, resources, residual filters, notes."""
        return {
            "provider": self.provider,
            "resources": [r.to_json() for r in self.resources],
            "residual_filters": dict(self.residual_filters),
            "notes": list(self.notes),
        }


#: An adapter's plan hook: (its settings table, the subscriptions, the publication topics) -> plan.
PlanBuilder = Callable[
    [Mapping[str, Any], Sequence[SubscriptionSpec], Sequence[str]], ProvisioningPlan
]


@dataclass(frozen=True)
class ListedSubscription:
    """A subscription found on the provider: its portable name and topic, and what holds it."""

    name: str
    topic: str
    resources: tuple[str, ...] = ()  # the provider's names of what was created for it


@dataclass(frozen=True)
class ProvisioningSupport:
    """An adapter's provisioning hooks (AdapterInfo.provisioning).

    `plan(settings, specs, publications)` builds the ProvisioningPlan without
    touching the provider; `list_subscriptions(adapter)` finds the
    subscriptions polybus created there (None: the adapter cannot list them).
    """

    plan: PlanBuilder
    list_subscriptions: Callable[[Any], Sequence[ListedSubscription]] | None = None


def resource_key(*parts: str) -> str:
    """A stable key from names: lower-case ``[a-z0-9_]``, with a short hash when anything changed."""
    raw = "_".join(parts)
    key = _KEY.sub("_", raw.lower())
    if key != raw or not key[:1].isalpha():
        key = f"{key if key[:1].isalpha() else 'r_' + key}_{hashlib.sha256(raw.encode()).hexdigest()[:6]}"
    return key


def filter_text(flt: Filter) -> str:
    """A residual filter as compact JSON (the Subscriptions API dialect), for plans."""
    return json.dumps(filter_json(flt), separators=(",", ":"))


def topics_of(specs: Iterable[SubscriptionSpec], publications: Iterable[str] = ()) -> list[str]:
    """Every topic the subscriptions and publications name, in first-seen order."""
    seen: dict[str, None] = {}
    for spec in specs:
        seen.setdefault(spec.topic)
    for topic in publications:
        seen.setdefault(topic)
    return list(seen)


def render(plan: ProvisioningPlan, fmt: str) -> str:
    """The plan as text in `fmt`; UnsupportedError when the provider has no templates for it."""
    if fmt not in plan.formats():
        raise UnsupportedError(
            f"no {fmt} plan for {plan.provider}",
            [
                Problem(
                    "--format",
                    fmt,
                    f"the {plan.provider} adapter plans in: {', '.join(plan.formats())}",
                )
            ],
        )
    if fmt == "json":
        return json.dumps(plan.to_json(), indent=2) + "\n"
    if fmt == "terraform":
        return _terraform(plan)
    if fmt == "cloudformation":
        return _cloudformation(plan)
    return _bicep(plan)


def _plain(value: Any) -> Any:
    """Templates' markers as plain JSON (a Ref as {"ref": key})."""
    if isinstance(value, Ref):
        return {"ref": value.key, **({"attr": value.attr} if value.attr else {})}
    if isinstance(value, Block):
        return _plain(value.body)
    if isinstance(value, JsonText):
        return _plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- Terraform (HCL) -----------------------------------------------------------------


def _terraform(plan: ProvisioningPlan) -> str:
    types = {r.key: r.templates["terraform"].type for r in plan.resources}
    out = [f"# polybus provisioning plan for {plan.provider}: {len(plan.resources)} resource(s)"]
    out += [f"# {note}" for note in plan.notes]
    for resource in plan.resources:
        template = resource.templates["terraform"]
        if not template.type:
            continue
        out.append("")
        out.append(f"# {resource.kind} for {resource.purpose}")
        out.append(f'resource "{template.type}" "{resource.key}" {{')
        out += _hcl_body(template.properties, types, 1)
        out.append("}")
    return "\n".join(out) + "\n"


def _hcl_body(body: Mapping[str, Any], types: Mapping[str, str], depth: int) -> list[str]:
    pad = "  " * depth
    lines: list[str] = []
    for key, value in body.items():
        if isinstance(value, Block):
            lines.append(f"{pad}{key} {{")
            lines += _hcl_body(value.body, types, depth + 1)
            lines.append(f"{pad}}}")
        else:
            lines.append(f"{pad}{_hcl_key(key)} = {_hcl_value(value, types, depth)}")
    return lines


def _hcl_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key) else json.dumps(key)


def _hcl_value(value: Any, types: Mapping[str, str], depth: int) -> str:
    if isinstance(value, Ref):
        return f"{types[value.key]}.{value.key}.{value.attr or 'id'}"
    if isinstance(value, JsonText):
        return f"jsonencode({_hcl_value(value.value, types, depth)})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value).replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, Block):
        value = value.body
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        pad = "  " * (depth + 1)
        items = [
            f"{pad}{_hcl_key(str(k))} = {_hcl_value(v, types, depth + 1)}" for k, v in value.items()
        ]
        return "{\n" + "\n".join(items) + "\n" + "  " * depth + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_hcl_value(v, types, depth) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as HCL")


# -- CloudFormation (JSON) -------------------------------------------------------------


def logical_id(key: str) -> str:
    """A CloudFormation logical id (alphanumeric) for a resource key."""
    return "".join(part[:1].upper() + part[1:] for part in key.split("_") if part)


def _cloudformation(plan: ProvisioningPlan) -> str:
    resources: dict[str, Any] = {}
    for resource in plan.resources:
        template = resource.templates["cloudformation"]
        if not template.type:
            continue
        resources[logical_id(resource.key)] = {
            "Type": template.type,
            "Properties": _cfn_value(template.properties),
        }
    document = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"polybus provisioning plan for {plan.provider}"
        + (f" ({'; '.join(plan.notes)})" if plan.notes else ""),
        "Resources": resources,
    }
    return json.dumps(document, indent=2) + "\n"


def _cfn_value(value: Any) -> Any:
    if isinstance(value, Ref):
        if not value.attr:
            return {"Ref": logical_id(value.key)}
        return {"Fn::GetAtt": [logical_id(value.key), value.attr]}
    if isinstance(value, Block | JsonText):
        return _cfn_value(value.body if isinstance(value, Block) else value.value)
    if isinstance(value, Mapping):
        return {str(k): _cfn_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cfn_value(v) for v in value]
    return value


# -- Bicep ------------------------------------------------------------------------------


def _bicep(plan: ProvisioningPlan) -> str:
    out = [f"// polybus provisioning plan for {plan.provider}: {len(plan.resources)} resource(s)"]
    out += [f"// {note}" for note in plan.notes]
    for resource in plan.resources:
        template = resource.templates["bicep"]
        if not template.type:
            continue
        out.append("")
        out.append(f"// {resource.kind} for {resource.purpose}")
        existing = " existing" if template.existing else ""
        out.append(f"resource {resource.key} '{template.type}'{existing} = {{")
        out.append(f"  name: {_bicep_value(template.name or resource.name, 1)}")
        if template.parent is not None:
            out.append(f"  parent: {template.parent}")
        for key, value in template.properties.items():
            out.append(f"  {_bicep_key(key)}: {_bicep_value(value, 1)}")
        out.append("}")
    return "\n".join(out) + "\n"


def _bicep_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else _bicep_string(key)


def _bicep_string(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("${", "\\${")
    )
    return f"'{escaped}'"


def _bicep_value(value: Any, depth: int) -> str:
    if isinstance(value, Ref):
        return f"{value.key}.{value.attr or 'id'}"
    if isinstance(value, Block | JsonText):
        return _bicep_value(value.body if isinstance(value, Block) else value.value, depth)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return _bicep_string(value)
    pad = "  " * (depth + 1)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = [
            f"{pad}{_bicep_key(str(k))}: {_bicep_value(v, depth + 1)}" for k, v in value.items()
        ]
        return "{\n" + "\n".join(items) + "\n" + "  " * depth + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        items = [f"{pad}{_bicep_value(v, depth + 1)}" for v in value]
        return "[\n" + "\n".join(items) + "\n" + "  " * depth + "]"
    raise TypeError(f"cannot write {type(value).__name__} as Bicep")
