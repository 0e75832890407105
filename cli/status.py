"""`polybus status [--json] [--subscription NAME ...]`: the lag gauge and alarms of the bus.

For each subscription: events waiting, in flight, the oldest unacked age, the
dead-letter depth (the adapter's `backlog_stats`), and the [alarms] rules of
polybus.toml that the figures breach now. Which subscriptions: the names given
with ``--subscription``, else every subscription the adapter can list (the
local bus lists its own; the cloud adapters need the names). The error-rate
rules need the runtime's counters, so only a running service (`/readyz`,
`/metrics`) evaluates them; status shows the rules over the backlog figures.
"""

from __future__ import annotations

import json
from typing import Any

import click

from polybus.adapters import connect
from polybus.cli.errors import friendly_errors
from polybus.core.alarms import AlarmSettings, breaches, figures, parse_alarms
from polybus.core.config import load_config
from polybus.core.contract import BacklogStats, SupportsBacklog
from polybus.core.errors import PolybusError


def subscription_status(adapter: Any, name: str, alarms: AlarmSettings) -> dict[str, Any]:
    """One subscription's figures and the rules they breach, as JSON."""
    try:
        stats: BacklogStats = adapter.backlog_stats(name)
    except (PolybusError, KeyError) as exc:
        return {"subscription": name, "error": str(exc).strip("'\"")}
    values = figures(stats, None)
    firing = [
        {"rule": rule.name, "expression": rule.expression, "value": value}
        for found in breaches(alarms.rules, name, values).values()
        if found is not None
        for rule, value in [found]
    ]
    return {
        "subscription": name,
        "undelivered": stats.undelivered,
        "in_flight": stats.in_flight,
        "oldest_age": stats.oldest_age,
        "dead_letters": stats.dead_letters,
        "alarms": firing,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s" if isinstance(value, float) else str(value)


def _age(row: dict[str, Any]) -> str:
    """The oldest age, "unavailable" when events wait but the provider gave no age (aws without a CloudWatch datapoint)."""
    if row["oldest_age"] is None and (row["undelivered"] or row["in_flight"]):
        return "unavailable"
    return _cell(row["oldest_age"])


def render(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table (errors and alarms after each row)."""
    head = ("SUBSCRIPTION", "UNDELIVERED", "IN FLIGHT", "OLDEST AGE", "DEAD LETTERS", "ALARMS")
    table = [head]
    for row in rows:
        if "error" in row:
            table.append((row["subscription"], "?", "?", "?", "?", row["error"]))
            continue
        alarms = ", ".join(f"{a['rule']} ({a['expression']})" for a in row["alarms"]) or "ok"
        table.append(
            (
                row["subscription"],
                _cell(row["undelivered"]),
                _cell(row["in_flight"]),
                _age(row),
                _cell(row["dead_letters"]),
                alarms,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  "
        + line[-1]
        for line in table
    )


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "--subscription",
    "names",
    multiple=True,
    help="A subscription to show (repeatable; default: every one the adapter can list).",
)
@click.pass_context
@friendly_errors
def status_command(ctx: click.Context, as_json: bool, names: tuple[str, ...]) -> None:
    """Backlog, in flight, oldest age, dead letters and firing alarms per subscription."""
    config = load_config(ctx.obj["config_path"])
    alarms = parse_alarms(config.settings("alarms"))
    with connect(config) as bus:
        adapter = bus.adapter
        if not isinstance(adapter, SupportsBacklog):
            raise click.ClickException(f"provider {bus.provider!r} does not report a backlog")
        listing = getattr(adapter, "subscriptions", None)
        if not names and not callable(listing):
            raise click.UsageError(
                f"provider {bus.provider!r} cannot list its subscriptions: "
                "name them with --subscription NAME (repeatable)"
            )
        chosen = list(names) or list(listing())  # type: ignore[misc]
        rows = [subscription_status(adapter, name, alarms) for name in chosen]
        provider = bus.provider
    if as_json:
        click.echo(json.dumps({"provider": provider, "subscriptions": rows}, indent=2))
    elif not rows:
        click.echo(f"{provider}: no subscriptions")
    else:
        click.echo(render(rows))
