"""`polybus subscriptions list|delete`: what polybus created on the configured provider."""

from __future__ import annotations

import json

import click

from polybus.adapters import available_adapters, connect
from polybus.cli.errors import friendly_errors
from polybus.core.config import load_config
from polybus.core.errors import Problem, UnknownProviderError, UnsupportedError


@click.group("subscriptions")
def subscriptions_group() -> None:
    """List or delete the subscriptions polybus created (with their queues, rules, DLQs)."""


@subscriptions_group.command("list")
@click.option("--provider", default=None, help="Provider (overrides polybus.toml).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@friendly_errors
def list_command(ctx: click.Context, provider: str | None, as_json: bool) -> None:
    """List the subscriptions polybus created on the provider, with what holds each."""
    config = load_config(ctx.obj["config_path"])
    name = provider or config.provider
    registry = available_adapters()
    if name not in registry:
        raise UnknownProviderError(name, list(registry))
    support = registry[name].info.provisioning
    if support is None or support.list_subscriptions is None:
        raise UnsupportedError(
            f"the {name} adapter cannot list subscriptions",
            [Problem("provider", name, "delete them by name: polybus subscriptions delete NAME")],
        )
    with connect(config, provider=name) as bus:
        found = list(support.list_subscriptions(bus.adapter))
    if as_json:
        rows = [{"name": s.name, "topic": s.topic, "resources": list(s.resources)} for s in found]
        click.echo(json.dumps(rows, indent=2))
        return
    if not found:
        click.echo(f"no polybus subscriptions on {name}")
    for sub in found:
        click.echo(f"{sub.name}  (topic {sub.topic or '?'})")
        for resource in sub.resources:
            click.echo(f"  {resource}")


@subscriptions_group.command("delete")
@click.argument("names", nargs=-1, required=True)
@click.option("--provider", default=None, help="Provider (overrides polybus.toml).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
@friendly_errors
def delete_command(
    ctx: click.Context, names: tuple[str, ...], provider: str | None, yes: bool
) -> None:
    """Delete subscriptions by name, with their dead-letter targets (pending events are lost)."""
    config = load_config(ctx.obj["config_path"])
    chosen = provider or config.provider
    if not yes:
        click.confirm(
            f"delete {', '.join(names)} on {chosen}, with their pending events?", abort=True
        )
    with connect(config, provider=chosen) as bus:
        for name in names:
            bus.adapter.delete_subscription(name)
            click.echo(f"deleted {name} on {chosen}")
