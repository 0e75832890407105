"""`polybus outbox relay|status`: publish a database's outbox rows through the configured provider.

    polybus outbox relay --db postgresql+psycopg://app@db/shop      # until SIGTERM / SIGINT
    polybus outbox relay --db sqlite:///shop.db --once              # publish what is there, exit

`--db` defaults to the ``url`` of the [outbox] table in polybus.toml, whose
other keys (retention, batch_size, lease, poll_interval, backoff,
backoff_max) tune the relay; options given here win. A [journal] table also
records what the relay publishes.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from typing import Any

import click

from polybus.cli.errors import friendly_errors
from polybus.core.config import load_config
from polybus.core.extras import require


def _settings(config_path: str | None, db: str | None, overrides: dict[str, Any]) -> Any:
    require("polybus outbox", ("sqlalchemy",), "sql")
    from polybus.core.consistency.relay import OUTBOX_TABLE, parse_outbox

    config = load_config(config_path)
    table = dict(config.providers.get(OUTBOX_TABLE, {}))
    table.update({k: v for k, v in overrides.items() if v is not None})
    if not db and "url" not in table:
        raise click.UsageError("give --db URL (or url in the [outbox] table of polybus.toml)")
    return config, parse_outbox(table, db)


@contextlib.contextmanager
def database_errors(what: str) -> Iterator[None]:
    """Turn a database failure (unreachable, bad URL, missing driver) into a one-line CLI error."""
    try:
        yield
    except ImportError as exc:
        raise click.ClickException(f"{what}: a database driver is missing: {exc}") from None
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if not isinstance(exc, SQLAlchemyError):
            raise
        cause = getattr(exc, "orig", None) or exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise click.ClickException(f"{what}: {type(cause).__name__}: {first}") from None


@click.group("outbox")
def outbox_group() -> None:
    """Relay transactional-outbox rows to the bus."""


@outbox_group.command("relay")
@click.option("--db", default=None, help="SQLAlchemy URL of the database holding the outbox.")
@click.option("--once", is_flag=True, help="Publish what is publishable now, then exit.")
@click.option("--provider", default=None, help="Provider to publish to (overrides polybus.toml).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Rows claimed per round.")
@click.option("--lease", type=click.FloatRange(min=0.001), default=None, help="Seconds a claim is held.")
@click.option("--poll-interval", type=click.FloatRange(min=0.001), default=None, help="Seconds between polls.")
@click.option("--retention", default=None, help="Keep published rows this long (e.g. 3600, 12h, 7d).")
@click.pass_context
@friendly_errors
def relay_command(
    ctx: click.Context,
    db: str | None,
    once: bool,
    provider: str | None,
    batch_size: int | None,
    lease: float | None,
    poll_interval: float | None,
    retention: str | None,
) -> None:
    """Publish the outbox rows of --db through the configured provider, at least once, in key order."""
    from polybus.core.consistency.journal import connect_with_journal
    from polybus.core.consistency.relay import Relay

    overrides = {
        "batch_size": batch_size,
        "lease": lease,
        "poll_interval": poll_interval,
        "retention": retention,
    }
    config, outbox = _settings(ctx.obj.get("config_path"), db, overrides)
    with database_errors("outbox relay"), connect_with_journal(config, provider=provider) as bus:
        relay = Relay(outbox.url, bus, outbox.settings)
        try:
            if once:
                published = relay.run_once()
                pruned = relay.prune()
                click.echo(f"published {published} event(s); pruned {pruned} journal row(s)")
                return
            stop = threading.Event()

            def on_signal(_signum: int, _frame: object) -> None:
                stop.set()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            click.echo(f"relaying outbox to {bus.provider} (Ctrl-C stops)", err=True)
            relay.run(stop)
            stats = relay.stats()
            click.echo(f"published {stats.published} event(s); {stats.failed} failed attempt(s)", err=True)
        finally:
            relay.engine.dispose()


@outbox_group.command("status")
@click.option("--db", default=None, help="SQLAlchemy URL of the database holding the outbox.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
@friendly_errors
def status_command(ctx: click.Context, db: str | None, as_json: bool) -> None:
    """Rows waiting, rows in backoff and rows kept as the journal."""
    from polybus.core.consistency.relay import outbox_counts

    _config, outbox = _settings(ctx.obj.get("config_path"), db, {})
    with database_errors("outbox status"):
        counts = outbox_counts(outbox.url)
    if as_json:
        click.echo(json.dumps(counts))
        return
    click.echo(
        f"pending {counts['pending']} (failing {counts['failing']}), published {counts['published']}"
    )
