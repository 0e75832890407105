"""`polybus replay --since T --subscription NAME`: redeliver a subscription's events since a time.

Natively where the provider keeps history (aws archives, gcp seek, the local
bus); elsewhere (azure) from the event journal of the [journal] table, by
republishing the topic's events marked for that one subscription. `--since`
is an ISO 8601 time (UTC when no offset is given) or a duration back from now
(``90s``, ``15m``, ``2h``, ``7d``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from polybus.adapters import connect
from polybus.cli.errors import friendly_errors
from polybus.cli.outbox import database_errors
from polybus.core.bus import Bus
from polybus.core.config import load_config
from polybus.core.errors import ConfigError
from polybus.core.extras import require


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """An aware datetime from ISO 8601 text or a duration back from `now`."""
    from polybus.core.consistency.database import parse_duration

    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            seconds = parse_duration("--since", text)
        except ConfigError:
            raise click.BadParameter(
                f"{value!r} is neither an ISO 8601 time (2026-01-31T12:00:00Z) nor a duration (15m, 2h, 7d)",
                param_hint="--since",
            ) from None
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _connect(config_path: str | None, provider: str | None) -> Bus:
    """The configured bus, with the journal plugin when a [journal] table is configured."""
    config = load_config(config_path)
    if "journal" not in config.providers:
        return connect(config, provider=provider)
    require("the event journal", ("sqlalchemy",), "sql")
    from polybus.core.consistency.journal import connect_with_journal

    return connect_with_journal(config, provider=provider)


@click.command("replay")
@click.option("--since", "since_text", required=True, help="ISO 8601 time or a duration back (2h, 7d).")
@click.option("--subscription", "-s", required=True, help="The subscription to redeliver to.")
@click.option("--topic", default=None, help="The subscription's topic (journal replay; default: default).")
@click.option("--provider", default=None, help="Provider (overrides polybus.toml).")
@click.option(
    "--from-journal", is_flag=True, help="Replay from the [journal] even where the provider can replay."
)
@click.pass_context
@friendly_errors
def replay_command(
    ctx: click.Context,
    since_text: str,
    subscription: str,
    topic: str | None,
    provider: str | None,
    from_journal: bool,
) -> None:
    """Redeliver to --subscription every event of its topic published since --since."""
    since = parse_since(since_text)
    with database_errors("replay"), _connect(ctx.obj.get("config_path"), provider) as bus:
        count = bus.replay(
            subscription, since, topic=topic, source="journal" if from_journal else "auto"
        )
        where = bus.provider
    if count is None:
        click.echo(f"replaying {subscription} on {where} since {since.isoformat()} (native)")
    else:
        click.echo(f"replayed {count} event(s) from the journal to {subscription} on {where}")
