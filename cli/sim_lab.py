"""``polybus sim lab FILE``: serve the interactive lab for a scenario on a local port."""

from __future__ import annotations

import webbrowser

import click

from polybus.cli.errors import friendly_errors


@click.command("lab")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Local port (0: any free one).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Simulated seconds per lab run (default: a short run sized to the load).",
)
@click.option(
    "--replications",
    "-r",
    type=click.IntRange(1),
    default=2,
    show_default=True,
    help="Replications per lab run (2 or more draw confidence bands).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@friendly_errors
def lab_command(
    file: str, port: int, host: str, duration: float | None, replications: int, open_browser: bool
) -> None:  # fmt: skip
    """Serve a page with the scenario's topologies, sliders that re-run it, and exercises to predict."""
    from polybus.sim.lab import Lab, LabServer

    server = LabServer(Lab(file, duration=duration, replications=replications), host, port)
    click.echo(f"polybus sim lab: {server.url}  (Ctrl-C to stop)")
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.close()
