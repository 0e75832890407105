"""`polybus dlq list|show|requeue|purge`: inspect and settle a subscription's dead letters."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from polybus.adapters import connect
from polybus.cli.errors import friendly_errors
from polybus.core.contract import DEFAULT_TOPIC
from polybus.core.dashboard import dlq

console = Console()

_subscription = click.option(
    "--subscription", "-s", required=True, help="The subscription whose dead letters to use."
)


@click.group("dlq")
def dlq_group() -> None:
    """Inspect, requeue and purge dead letters."""


@dlq_group.command("list")
@_subscription
@click.option("--limit", type=int, default=dlq.LIMIT, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
@friendly_errors
def list_command(ctx: click.Context, subscription: str, limit: int, as_json: bool) -> None:
    """List the dead letters: id, type, attempts and reason (where the provider keeps one)."""
    with connect(ctx.obj["config_path"]) as bus:
        letters = dlq.list_dead_letters(bus, subscription, limit)
    if as_json:
        click.echo(json.dumps([d.to_json() for d in letters], indent=2))
        return
    if not letters:
        console.print(f"no dead letters in {subscription}")
        return
    table = Table("id", "type", "attempt", "reason (first line)")
    table.columns[0].no_wrap = table.columns[1].no_wrap = True
    for d in letters:
        first = (d.reason or "-").splitlines()[0]
        table.add_row(d.id, d.type, str(d.attempt), first)
    console.print(table)


@dlq_group.command("show")
@click.argument("event_id")
@_subscription
@click.pass_context
@friendly_errors
def show_command(ctx: click.Context, event_id: str, subscription: str) -> None:
    """Print one dead letter with its whole event as JSON (exit 1 when there is none)."""
    with connect(ctx.obj["config_path"]) as bus:
        found = dlq.find(bus, subscription, event_id)
    if found is None:
        raise click.ClickException(f"no dead letter {event_id!r} in {subscription}")
    click.echo(json.dumps(found.to_json(full=True), indent=2))


@dlq_group.command("requeue")
@_subscription
@click.option("--topic", default=DEFAULT_TOPIC, show_default=True, help="Publish them here.")
@click.option("--id", "ids", multiple=True, help="A dead letter's event id (repeatable).")
@click.option("--all", "all_", is_flag=True, help="Requeue every dead letter.")
@click.pass_context
@friendly_errors
def requeue_command(
    ctx: click.Context, subscription: str, topic: str, ids: tuple[str, ...], all_: bool
) -> None:
    """Publish dead letters back to a topic; each is removed only after its publish succeeded."""
    if bool(ids) == all_:
        raise click.UsageError("give --id ID (one or more) or --all")
    with connect(ctx.obj["config_path"]) as bus:
        outcome = dlq.requeue(bus, subscription, topic, None if all_ else set(ids))
    _report("requeued", outcome, f" to {topic}")


@dlq_group.command("purge")
@_subscription
@click.option("--id", "ids", multiple=True, help="Only this event id (repeatable).")
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.pass_context
@friendly_errors
def purge_command(ctx: click.Context, subscription: str, ids: tuple[str, ...], yes: bool) -> None:
    """Delete dead letters for good (asks first unless --yes)."""
    what = f"{len(ids)} dead letter(s)" if ids else "every dead letter"
    if not yes:
        click.confirm(f"Delete {what} of {subscription} for good?", abort=True)
    with connect(ctx.obj["config_path"]) as bus:
        outcome = dlq.purge(bus, subscription, set(ids) if ids else None)
    _report("purged", outcome, "")


def _report(verb: str, outcome: dlq.Outcome, where: str) -> None:
    console.print(f"{verb} {len(outcome.done)} dead letter(s){where}")
    for event_id in outcome.done:
        console.print(f"  {event_id}")
    for event_id, why in outcome.skipped:
        console.print(f"  skipped {event_id}: {why}")
