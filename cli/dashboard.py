"""`polybus dashboard`: the live health page of the configured bus, served locally."""

from __future__ import annotations

from pathlib import Path

import click

from polybus.adapters import connect
from polybus.cli.errors import friendly_errors
from polybus.core.dashboard.metrics import MetricsSource
from polybus.core.dashboard.server import (
    Dashboard,
    DashboardServer,
    SpanSource,
    parse_subscriptions,
)
from polybus.core.tracing.export import JsonLinesSource, SpanRecorder


def global_recorder() -> SpanRecorder | None:
    """A recorder on OpenTelemetry's global SDK TracerProvider, when one is configured."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    provider = trace.get_tracer_provider()
    if not hasattr(provider, "add_span_processor"):  # the API's proxy or no-op provider
        return None
    return SpanRecorder().attach(provider)


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
@click.option(
    "--traces",
    "traces",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    help="A JSON-lines span file (demo --trace-out, JsonLinesExporter) for the flow view "
    "and waterfall; read as it grows (repeatable).",
)
@click.pass_context
@friendly_errors
def dashboard_command(
    ctx: click.Context,
    port: int,
    host: str,
    subscriptions: tuple[str, ...],
    metrics: tuple[str, ...],
    traces: tuple[Path, ...],
) -> None:
    """Serve a live page: backlog, oldest age, dead letters, throughput, errors, p50/p99, flow, traces."""
    if not subscriptions and not metrics and not traces:
        raise click.UsageError("give --subscription NAME, --metrics URL and/or --traces FILE")
    spans: list[SpanSource] = [JsonLinesSource(path) for path in traces]
    recorder = global_recorder()  # tracing configured in this process: its spans too
    if recorder is not None:
        spans.append(recorder)
    with connect(ctx.obj["config_path"]) as bus:
        board = Dashboard(
            bus,
            topics=parse_subscriptions(subscriptions),
            sources=[MetricsSource(url) for url in metrics],
            spans=spans,
        )
        server = DashboardServer(board, host, port)
        click.echo(f"polybus dashboard on {server.url} (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
