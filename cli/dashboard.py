"""`polybus dashboard`: the live health page of the configured bus, served locally."""

from __future__ import annotations

import click

from polybus.adapters import connect
from polybus.cli.errors import friendly_errors
from polybus.core.dashboard.metrics import MetricsSource
from polybus.core.dashboard.server import Dashboard, DashboardServer, parse_subscriptions


@click.command("dashboard")
@click.option("--port", type=int, default=8089, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--subscription",
    "-s",
    "subscriptions",
    multiple=True,
    help="NAME or NAME=TOPIC (the topic requeues go to); repeatable.",
)
@click.option(
    "--metrics",
    "metrics",
    multiple=True,
    help="A `polybus run --health-port` address, e.g. http://127.0.0.1:8080 (repeatable).",
)
@click.pass_context
@friendly_errors
def dashboard_command(
    ctx: click.Context,
    port: int,
    host: str,
    subscriptions: tuple[str, ...],
    metrics: tuple[str, ...],
) -> None:
    """Serve a live page: backlog, oldest age, dead letters, throughput, errors, p50/p99."""
    if not subscriptions and not metrics:
        raise click.UsageError("give --subscription NAME and/or --metrics URL")
    with connect(ctx.obj["config_path"]) as bus:
        board = Dashboard(
            bus,
            topics=parse_subscriptions(subscriptions),
            sources=[MetricsSource(url) for url in metrics],
        )
        server = DashboardServer(board, host, port)
        click.echo(f"polybus dashboard on {server.url} (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
