"""`polybus emulate NAME|all`: run registered emulators on loopback until Ctrl-C.

Prints, ready to paste, the polybus.toml block and the environment exports
that reach what it started. A port that cannot be bound is one line on stderr
and exit 1, before anything starts. `--key` sets the access key of emulators
that check one (azure); without it they use their stable, public default, so
a pasted polybus.toml keeps working across restarts.
"""

from __future__ import annotations

import inspect
import json
import signal
import socket
import threading
from collections.abc import Mapping
from typing import Any

import click

from polybus.adapters import available_adapters
from polybus.cli.errors import friendly_errors
from polybus.core.emulation import EmulatorSpec, RunningEmulator
from polybus.core.errors import Problem, UnsupportedError

ALL = "all"


def emulator_names() -> list[str]:
    """Registered adapters that bring an emulator."""
    return sorted(n for n, reg in available_adapters().items() if reg.info.emulator is not None)


def describe(name: str, emulator: RunningEmulator) -> list[str]:
    """What reaches a running emulator: endpoint, polybus.toml table, environment."""
    return describe_all({name: emulator})


def describe_all(running: Mapping[str, RunningEmulator]) -> list[str]:
    """Headlines, one polybus.toml block (a table per emulator) and the merged exports."""
    names = list(running)
    lines = [f"{name} emulator listening on {emu.endpoint}" for name, emu in running.items()]
    lines += ["", "# polybus.toml"]
    lines.append(f'provider = "{names[0]}"')
    lines += [f'# provider = "{name}"' for name in names[1:]]
    for name, emulator in running.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in emulator.settings().items()]
        # Settings an emulator serves but does not turn on (e.g. a monitoring API stand-in).
        optional = getattr(emulator, "optional_settings", None)
        if callable(optional):
            lines += [f"# {key} = {toml_value(value)}" for key, value in optional().items()]
    env = {k: v for emulator in running.values() for k, v in emulator.environment().items()}
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


def port_problem(host: str, port: int) -> str | None:
    """Why host:port cannot be listened on (as the servers bind: SO_REUSEADDR), or None."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def takes_key(spec: EmulatorSpec) -> bool:
    """Whether the emulator's start function accepts an access key."""
    try:
        return "key" in inspect.signature(spec.start).parameters
    except (TypeError, ValueError):
        return False


def _specs(name: str) -> dict[str, EmulatorSpec]:
    adapters = available_adapters()
    if name == ALL:
        return {n: adapters[n].info.emulator for n in emulator_names()}  # type: ignore[misc]
    spec = adapters[name].info.emulator if name in adapters else None
    if spec is None:
        raise UnsupportedError(
            "no emulator",
            [
                Problem(
                    "NAME",
                    name,
                    f"emulators are registered for: {', '.join(emulator_names())} (or 'all')",
                )
            ],
        )
    return {name: spec}


def _launch(name: str, spec: EmulatorSpec, host: str, port: int, key: str | None) -> Any:
    if spec.requires is not None:
        spec.requires.check()
    busy = port_problem(host, port)
    if busy is not None:
        raise click.ClickException(
            f"emulate {name}: cannot listen on {host}:{port} ({busy}); "
            "stop what uses it or pick another port with --port"
        )
    try:
        if key is not None and takes_key(spec):
            start: Any = spec.start
            return start(host, port, key=key)
        return spec.start(host, port)
    except OSError as exc:
        raise click.ClickException(f"emulate {name}: {exc}") from None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@click.command("emulate")
@click.argument("name")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=int,
    default=None,
    help="Port (default: the emulator's own; 0: a free one, the only value 'all' takes).",
)
@click.option("--key", default=None, help="Access key for emulators that check one (azure).")
@friendly_errors
def emulate_command(name: str, host: str, port: int | None, key: str | None) -> None:
    """Run the emulator of adapter NAME (or `all` of them) on loopback until Ctrl-C."""
    specs = _specs(name)
    if port not in (None, 0) and len(specs) > 1:
        raise click.UsageError("--port names one port: with 'all' only 0 (free ports) is allowed")
    if key is not None and not any(takes_key(spec) for spec in specs.values()):
        raise click.UsageError(f"--key: the {name} emulator checks no key")
    running: dict[str, RunningEmulator] = {}
    try:
        for each, spec in specs.items():
            chosen = spec.default_port if port is None else port
            running[each] = _launch(each, spec, host, chosen, key)
        if threading.current_thread() is threading.main_thread():
            # before "ready": a `kill` right after it must find the handler in place
            signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops them as cleanly as Ctrl-C
        click.echo("\n".join(describe_all(running)))
        click.echo("\n# ready; Ctrl-C stops " + ("it" if len(running) == 1 else "them"))
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        for emulator in running.values():
            emulator.stop()
