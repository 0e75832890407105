"""The ``polybus`` command: one group, one module per subcommand group."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

import click

from polybus.cli.bus import adapters_command, config_group, publish_command, tail_command
from polybus.cli.dashboard import dashboard_command
from polybus.cli.demo import demo_command
from polybus.cli.dlq import dlq_group
from polybus.cli.emulate import emulate_command
from polybus.cli.filter import filter_group
from polybus.cli.outbox import outbox_group
from polybus.cli.provision import provision_command
from polybus.cli.replay import replay_command
from polybus.cli.run import run_command
from polybus.cli.schema import schema_group
from polybus.cli.sim import sim_group
from polybus.cli.status import status_command
from polybus.cli.subscriptions import subscriptions_group


def _version() -> str:
    try:
        return version("polybus")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="polybus")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="POLYBUS_CONFIG",
    help="Configuration file (default: ./polybus.toml, else the embedded local bus).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log what the bus does.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """polybus: a portable CloudEvents bus and an event-driven architecture simulator."""
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(message)s")
    ctx.obj = {"config_path": config_path}


for command in (
    adapters_command,
    config_group,
    publish_command,
    run_command,
    tail_command,
    dashboard_command,
    demo_command,
    dlq_group,
    emulate_command,
    filter_group,
    outbox_group,
    provision_command,
    replay_command,
    schema_group,
    sim_group,
    status_command,
    subscriptions_group,
):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="polybus")


if __name__ == "__main__":  # python -m polybus.cli.main
    main()
