"""`polybus run MODULE:ATTR`: the worker process for a polybus.App.

Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT); 1 when the service
cannot start (configuration, a missing extra, the provider unreachable);
2 for a usage error (MODULE:ATTR not found or not an App). With
``--workers K`` a supervisor runs K worker processes as competing consumers,
restarts one that dies, forwards SIGTERM/SIGINT to all and exits 0 once they
stopped (1 when workers keep failing at startup).

With ``--outbox-db URL`` (or an [outbox] table with a ``url`` in
polybus.toml) each worker also runs the transactional-outbox relay in a
thread, publishing that database's outbox rows through the configured
provider (see docs/outbox.md); leases keep several workers from publishing
the same row.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

import click

from polybus.app import App
from polybus.cli.errors import friendly_errors
from polybus.cli.outbox import database_errors
from polybus.core.config import Config, load_config
from polybus.core.errors import PolybusError
from polybus.core.extras import require
from polybus.core.runtime.health import HealthServer, Probes

log = logging.getLogger("polybus.run")
RESTART_LIMIT = 5  # consecutive quick failures before the supervisor gives up
QUICK_FAILURE = 10.0  # seconds: a worker dying sooner than this failed to start


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (ts, level, logger, message, exc)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON."""
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def load_app(target: str) -> App:
    """The App named by ``module:attr`` (the current directory is importable)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise click.UsageError(f"{target!r}: expected MODULE:ATTR, e.g. service:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise click.UsageError(f"{target!r}: cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise click.UsageError(f"{target!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, App):
        raise click.UsageError(f"{target!r} is a {type(obj).__name__}, not a polybus.App")
    return obj


def _configure_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if level != "debug":  # SDKs log every HTTP request at INFO
        for noisy in ("azure", "botocore", "urllib3", "google", "grpc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


async def _serve(
    app: App, concurrency: int | None, health_host: str, health_port: int | None
) -> None:
    health = None
    if health_port is not None:
        probes = Probes(lambda: app.ready, app.metrics, app.alarm_detail)
        health = HealthServer(probes, health_host, health_port)
        await health.start()
        log.info("health on http://%s:%d (/healthz, /readyz, /metrics)", health_host, health.port)
    try:
        await app.serve(concurrency=concurrency)
    finally:
        if health is not None:
            await health.stop()


@click.command("run")
@click.argument("target", metavar="MODULE:ATTR")
@click.option("--provider", default=None, help="Provider to use (overrides polybus.toml).")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Handlers in flight per subscription (overrides the app's).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes (competing consumers).",
)
@click.option(
    "--health-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    help="Serve /healthz, /readyz and /metrics (worker i of K uses PORT+i).",
)
@click.option("--health-host", default="0.0.0.0", show_default=True)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds in-flight handlers get on shutdown (default 30).",
)
@click.option(
    "--outbox-db",
    default=None,
    help="Also relay this database's outbox (SQLAlchemy URL; default: [outbox] url).",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.pass_context
@friendly_errors
def run_command(
    ctx: click.Context,
    target: str,
    provider: str | None,
    concurrency: int | None,
    workers: int,
    health_port: int | None,
    health_host: str,
    grace: float | None,
    outbox_db: str | None,
    log_format: str,
    log_level: str,
) -> None:
    """Run the polybus.App at MODULE:ATTR until SIGTERM or SIGINT."""
    _configure_logging(log_format, log_level)
    if workers > 1:
        sys.exit(_supervise(ctx, target, workers, health_port))
    app = load_app(target)
    config_path = (ctx.obj or {}).get("config_path")
    if config_path:
        app.config = config_path
    if provider:
        app.provider = provider
    if grace is not None:
        app.with_settings(grace=grace)
    try:
        with database_errors("outbox relay"):
            relay = _start_relay(app, outbox_db)
        try:
            asyncio.run(_serve(app, concurrency, health_host, health_port))
        finally:
            if relay is not None:
                relay.stop()
                relay.bus.close()
    except PolybusError as exc:
        raise click.ClickException(str(exc)) from exc


def _start_relay(app: App, outbox_db: str | None) -> Any:
    """The outbox relay thread when --outbox-db or an [outbox] table asks for one, else None."""
    config = app.config if isinstance(app.config, Config) else load_config(app.config)
    table = config.providers.get("outbox")
    if not outbox_db and (table is None or "url" not in table):
        return None
    require("the outbox relay", ("sqlalchemy",), "sql")
    from polybus.core.consistency.journal import connect_with_journal
    from polybus.core.consistency.relay import Relay, parse_outbox

    outbox = parse_outbox(table or {}, outbox_db)
    bus = connect_with_journal(config, provider=app.provider)
    try:
        relay = Relay(outbox.url, bus, outbox.settings)
    except BaseException:
        bus.close()
        raise
    relay.start()
    log.info("outbox relay on %s publishing to %s", relay.key, bus.provider)
    return relay


def _worker_argv(ctx: click.Context, index: int, health_port: int | None) -> list[str]:
    params = dict(ctx.params)
    argv = [sys.executable, "-m", "polybus"]
    config_path = (ctx.obj or {}).get("config_path")
    if config_path:
        argv += ["--config", config_path]
    argv += ["run", params["target"], "--workers", "1"]
    for name in (
        "provider",
        "concurrency",
        "grace",
        "outbox_db",
        "log_format",
        "log_level",
        "health_host",
    ):
        if params.get(name) is not None:
            argv += [f"--{name.replace('_', '-')}", str(params[name])]
    if health_port is not None:
        argv += ["--health-port", str(health_port + index if health_port else 0)]
    return argv


def _supervise(ctx: click.Context, target: str, workers: int, health_port: int | None) -> int:
    load_app(target)  # a usage error is reported once, before any process starts
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    procs = [subprocess.Popen(_worker_argv(ctx, i, health_port)) for i in range(workers)]
    started = [time.monotonic()] * workers
    failures = [0] * workers
    log.info("supervising %d workers: %s", workers, [p.pid for p in procs])
    while not stopping:
        time.sleep(0.2)
        for i, proc in enumerate(procs):
            code = proc.poll()
            if code is None or stopping:
                continue
            quick = time.monotonic() - started[i] < QUICK_FAILURE
            failures[i] = failures[i] + 1 if quick else 1
            if failures[i] >= RESTART_LIMIT:
                log.error("worker %d failed %d times at startup; giving up", i, failures[i])
                _terminate(procs)
                return 1
            log.warning("worker %d (pid %d) exited with %d; restarting", i, proc.pid, code)
            time.sleep(min(5.0, 0.5 * 2 ** (failures[i] - 1)))
            procs[i] = subprocess.Popen(_worker_argv(ctx, i, health_port))
            started[i] = time.monotonic()
    _terminate(procs)
    return 0


def _terminate(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
