"""`polybus emulate NAME`: run any registered adapter's emulator on loopback until Ctrl-C."""

from __future__ import annotations

import json
import threading

import click

from polybus.adapters import available_adapters
from polybus.cli.errors import friendly_errors
from polybus.core.emulation import RunningEmulator
from polybus.core.errors import Problem, UnsupportedError


def emulator_names() -> list[str]:
    """Registered adapters that bring an emulator."""
    return sorted(n for n, reg in available_adapters().items() if reg.info.emulator is not None)


def describe(name: str, emulator: RunningEmulator) -> list[str]:
    """What reaches a running emulator: endpoint, polybus.toml table, environment."""
    lines = [f"{name} emulator listening on {emulator.endpoint}", "", "# polybus.toml"]
    lines.append(f'provider = "{name}"')
    lines.append(f"[{name}]")
    lines += [f"{key} = {toml_value(value)}" for key, value in emulator.settings().items()]
    env = emulator.environment()
    if env:
        lines += ["", "# environment"]
        lines += [f"export {key}={value}" for key, value in env.items()]
    return lines


def toml_value(value: object) -> str:
    """A TOML literal for a settings value (strings as JSON strings, which TOML reads alike)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value))


@click.command("emulate")
@click.argument("name")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Port (default: the emulator's own).")
@friendly_errors
def emulate_command(name: str, host: str, port: int | None) -> None:
    """Run the emulator of adapter NAME on loopback (see `polybus adapters`)."""
    adapters = available_adapters()
    spec = adapters[name].info.emulator if name in adapters else None
    if spec is None:
        raise UnsupportedError(
            "no emulator",
            [Problem("NAME", name, f"emulators are registered for: {', '.join(emulator_names())}")],
        )
    emulator = spec.launch(host, port)
    try:
        click.echo("\n".join(describe(name, emulator)))
        click.echo("\n# ready; Ctrl-C stops it")
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        emulator.stop()
