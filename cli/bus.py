"""Bus commands: adapters, config show, publish, tail."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from polybus.adapters import available_adapters, connect
from polybus.cli.errors import friendly_errors
from polybus.core.config import load_config
from polybus.core.contract import DEFAULT_TOPIC
from polybus.core.errors import EventValidationError, Problem
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


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@friendly_errors
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective configuration, secrets masked."""
    config = load_config(ctx.obj["config_path"])
    secrets = {name: reg.info.secret_keys for name, reg in available_adapters().items()}
    shown = config.masked(secrets)
    if as_json:
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    console.print(f"provider = [bold]{shown.pop('provider')}[/]   (from {shown.pop('source')})")
    for name, table in shown.items():
        console.print(f"[{name}]")
        for key, value in table.items():
            console.print(f"  {key} = {value!r}")


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
        idle = 0.0
        while count == 0 or seen < count:
            before = seen
            bus.poll(name, timeout=0.5)
            idle = 0.0 if seen > before else idle + 0.5
            if timeout and idle >= timeout:
                break
