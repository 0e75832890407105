"""`polybus emulate {aws,azure,gcp}`: run a local stand-in for a cloud until Ctrl-C."""

from __future__ import annotations

import threading

import click

from polybus.cli.errors import friendly_errors


@click.group("emulate")
def emulate_group() -> None:
    """Run a local emulator of a provider's service on loopback."""


def _serve_until_interrupted() -> None:
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopping")


@emulate_group.command("gcp")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8085, show_default=True)
@friendly_errors
def emulate_gcp(host: str, port: int) -> None:
    """Google Pub/Sub (gRPC) emulator; point the client at it with PUBSUB_EMULATOR_HOST."""
    from polybus.adapters.gcp.emulator import start_emulator

    with start_emulator(host, port) as emulator:
        click.echo(f"export PUBSUB_EMULATOR_HOST={emulator.host_port}")
        _serve_until_interrupted()


@emulate_group.command("azure")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8086, show_default=True)
@click.option("--key", default=None, help="Access key (default: a random one, printed).")
@friendly_errors
def emulate_azure(host: str, port: int, key: str | None) -> None:
    """Azure Event Grid (HTTP) emulator: basic and namespace topics."""
    from polybus.adapters.azure.emulator import start_emulator

    with start_emulator(host, port, key) as emulator:
        click.echo(f"endpoint = {emulator.endpoint}")
        click.echo(f"key = {emulator.key}")
        _serve_until_interrupted()


@emulate_group.command("aws")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5000, show_default=True)
@friendly_errors
def emulate_aws(host: str, port: int) -> None:
    """AWS EventBridge + SQS through moto's server (needs polybus[test] for moto)."""
    from polybus.adapters.aws.emulator import start

    emulator = start(host, port)
    try:
        click.echo(str(emulator))
        _serve_until_interrupted()
    finally:
        emulator.stop()
