"""Bus commands: adapters, config show, publish, tail."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from polybus.adapters import available_adapters, connect
from polybus.cli.errors import friendly_errors
from polybus.core.config import (
    Config,
    ProviderSettings,
    Setting,
    load_config,
    misspelt_tables,
    provider_settings,
    unknown_provider_problem,
)
from polybus.core.contract import DEFAULT_TOPIC
from polybus.core.errors import ConfigError, EventValidationError, Problem
from polybus.core.events import new_event
from polybus.core.formats import from_dict, to_dict
from polybus.core.plugins import RegisteredAdapter

console = Console()


@click.command("adapters")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@friendly_errors
def adapters_command(as_json: bool) -> None:
    """List the registered adapters, where each came from and what it supports."""
    found = sorted(available_adapters().items())
    if as_json:
        click.echo(json.dumps([adapter_json(name, reg) for name, reg in found], indent=2))
        return
    table = Table("name", "origin", "description", "supports")
    for name, reg in found:
        table.add_row(name, reg.origin, reg.info.description, _supports(reg))
    console.print(table)


def adapter_json(name: str, reg: RegisteredAdapter) -> dict[str, Any]:
    """One adapter's registration as plain JSON (capabilities, limits, extras, emulator)."""
    info = reg.info
    return {
        "name": name,
        "origin": reg.origin,
        "description": info.description,
        "capabilities": info.capabilities.to_json(),
        "native_filter": None if info.filters is None else info.filters.native_name,
        "emulator": None if info.emulator is None else info.emulator.description,
        "extra": None if info.requires is None else info.requires.extra,
        "installed": info.requires is None or info.requires.missing() is None,
    }


def _supports(reg: RegisteredAdapter) -> str:
    caps = reg.info.capabilities
    flags = [
        name
        for name, on in (
            ("ordering", caps.ordering),
            ("replay", caps.replay),
            ("native dead-letter", caps.native_dead_letter),
            ("native filters", caps.native_filters),
            ("exactly once", caps.exactly_once),
            ("emulator", reg.info.emulator is not None),
        )
        if on
    ]
    low, high = caps.delivery_attempts
    flags.append(f"attempts {low}-{high}")
    flags.append("/".join(caps.delivery_modes))
    requires = reg.info.requires
    if requires is not None and requires.missing() is not None:
        flags.append(f"needs pip install 'polybus[{requires.extra}]'")
    return ", ".join(flags)


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


class InvalidConfig(click.ClickException):
    """A configuration that does not validate: the problems on stderr, exit code 2."""

    exit_code = 2


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--all", "show_all", is_flag=True, help="Every registered provider, not only the chosen one."
)
@click.pass_context
@friendly_errors
def config_show(ctx: click.Context, as_json: bool, show_all: bool) -> None:
    """Validate and print the effective configuration: defaults, origins, secrets masked.

    Exit 2 when it does not validate (unknown keys, wrong types, bad values).
    """
    registry = available_adapters()
    try:
        config = load_config(ctx.obj["config_path"])
        views = effective_tables(config, registry, show_all)
    except ConfigError as exc:
        raise InvalidConfig(str(exc)) from exc
    secrets = {name: reg.info.secret_keys for name, reg in registry.items()}
    masked = config.masked(secrets)
    others = {
        k: v for k, v in masked.items() if k not in ("provider", "source") and k not in registry
    }
    if as_json:
        shown: dict[str, Any] = {
            "provider": masked["provider"],
            "provider_from": config.provider_origin,
            "source": config.source,
        }
        shown.update({v.name: masked[v.name] for v in views if v.name in masked})
        shown.update(others)
        shown["effective"] = {
            v.name: {s.key: {"value": s.value, "from": s.origin} for s in v.settings} for v in views
        }
        shown["notes"] = {v.name: v.note for v in views if v.note}
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    console.print(
        f"provider = {escape(repr(masked['provider']))}   "
        f"(from {escape(config.provider_origin)}; file: {escape(config.source)})",
        highlight=False,
    )
    for view in views:
        title = f"[{view.name}]" + ("" if view.chosen else "  (not the chosen provider)")
        if view.note:
            console.print(escape(f"{title}: {view.note}"), highlight=False)
            continue
        table = Table("key", "value", "from", title=escape(title), title_justify="left")
        for setting in view.settings:
            table.add_row(escape(setting.key), escape(_show(setting.value)), escape(setting.origin))
        console.print(table)
    for name, values in others.items():
        console.print(
            escape(f"[{name}]  (not a provider table: shown as written)"), highlight=False
        )
        rows = values.items() if isinstance(values, dict) else [("", values)]
        for key, value in rows:
            console.print(escape(f"  {key} = {_show(value)}"), highlight=False)


def _show(value: Any) -> str:
    return json.dumps(value, default=str) if not isinstance(value, str) else repr(value)


def effective_tables(
    config: Config, registry: Mapping[str, RegisteredAdapter], show_all: bool
) -> list[ProviderSettings]:
    """The providers to show (the chosen one, or all), after validating every provider table.

    Every table the file has for a registered provider is validated, shown or
    not; one ConfigError carries every problem found.
    """
    problems = list(misspelt_tables(config, registry))
    if config.provider not in registry:
        problems.append(unknown_provider_problem("provider", config.provider, registry))
    checked = [n for n in registry if n == config.provider or n in config.providers]
    shown = set(registry) if show_all else {config.provider}
    views = []
    for name in sorted(registry, key=lambda n: (n != config.provider, n)):
        if name not in shown and name not in checked:
            continue
        view = _provider_view(config, name, registry[name], problems, name in checked)
        if view is not None and name in shown:
            views.append(view)
    if problems:
        raise ConfigError(f"invalid configuration {config.source}", problems)
    return views


def _provider_view(
    config: Config, name: str, reg: RegisteredAdapter, problems: list[Problem], checked: bool
) -> ProviderSettings | None:
    """One provider's effective table; its problems go to `problems` when it is `checked`."""
    info = reg.info
    chosen = name == config.provider
    table = config.settings(name)
    if info.settings is None:  # a third-party adapter without a parser: shown as written
        raw = config.masked({name: info.secret_keys}).get(name, {})
        rows = tuple(Setting(str(k), v, "file") for k, v in raw.items())
        return ProviderSettings(name, rows, chosen, "" if table else "not configured")
    try:
        return provider_settings(name, table, info.settings, info.secret_keys, chosen=chosen)
    except ConfigError as exc:
        if checked:
            problems.extend(exc.problems)
            return None
        first = exc.problems[0]
        return ProviderSettings(name, (), chosen, f"not configured ({first.field}: {first.rule})")


def _events_from_input(
    file: str | None,
    type_: str | None,
    source: str | None,
    subject: str | None,
    data: str | None,
) -> list[Any]:
    if file is not None:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise EventValidationError(
                "invalid input", [Problem(file, text[:40], f"not JSON: {exc}")]
            ) from exc
        items = raw if isinstance(raw, list) else [raw]
        out = []
        for item in items:
            if isinstance(item, dict):
                item = {"specversion": "1.0", "id": str(uuid.uuid4()), **item}
            out.append(from_dict(item))
        return out
    problems = [
        Problem(flag, None, "required unless --file is given")
        for flag, value in (("--type", type_), ("--source", source))
        if not value
    ]
    payload: Any = None
    if data is not None:
        try:
            payload = json.loads(data)
        except ValueError:
            payload = data
    if problems:
        raise EventValidationError("cannot build an event", problems)
    assert type_ is not None and source is not None
    return [new_event(type_, source, payload, subject=subject)]


@click.command("publish")
@click.option("--type", "type_", help="Event type, e.g. com.shop.order.placed.")
@click.option("--source", help="Event source, e.g. /shop/eu.")
@click.option("--subject", help="Event subject.")
@click.option("--data", help="Event data: JSON, or a plain string.")
@click.option(
    "--file",
    type=click.Path(allow_dash=True),
    help="A JSON CloudEvent or array of them ('-' for stdin).",
)
@click.option("--topic", default=DEFAULT_TOPIC, show_default=True)
@click.pass_context
@friendly_errors
def publish_command(
    ctx: click.Context,
    type_: str | None,
    source: str | None,
    subject: str | None,
    data: str | None,
    file: str | None,
    topic: str,
) -> None:
    """Publish events from flags, a JSON file or stdin."""
    events = _events_from_input(file, type_, source, subject, data)
    with connect(ctx.obj["config_path"]) as bus:
        bus.publish(events, topic=topic)
        for event in events:
            console.print(
                f"published {event.get_id()} ({event.get_type()}) to {bus.provider}:{topic}"
            )


@click.command("tail")
@click.option("--topic", default=DEFAULT_TOPIC, show_default=True)
@click.option(
    "--filter", "filter_", help="A CESQL expression or a Subscriptions API filter in JSON."
)
@click.option("--subscription", help="Subscription name (default: a fresh tail-<id>).")
@click.option("--count", type=int, default=0, help="Stop after this many events (0: never).")
@click.option(
    "--timeout", type=float, default=0.0, help="Stop after this many idle seconds (0: never)."
)
@click.pass_context
@friendly_errors
def tail_command(
    ctx: click.Context,
    topic: str,
    filter_: str | None,
    subscription: str | None,
    count: int,
    timeout: float,
) -> None:
    """Subscribe to a topic and print each event as JSON lines."""
    flt: Any = None
    if filter_:
        flt = json.loads(filter_) if filter_.lstrip().startswith("{") else filter_
    name = subscription or f"tail-{uuid.uuid4().hex[:8]}"
    seen = 0

    def show(event: Any) -> None:
        nonlocal seen
        seen += 1
        click.echo(json.dumps(to_dict(event)))

    with connect(ctx.obj["config_path"]) as bus:
        bus.subscribe(name, show, topic=topic, filter=flt)
        try:
            idle = 0.0
            while count == 0 or seen < count:
                before = seen
                bus.poll(name, timeout=0.5)
                idle = 0.0 if seen > before else idle + 0.5
                if timeout and idle >= timeout:
                    break
        finally:
            if subscription is None:  # the fresh tail-<id> subscription: remove what it created
                bus.adapter.delete_subscription(name)
