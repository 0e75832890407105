"""`polybus filter explain`: what each provider evaluates natively, and what stays client-side."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from polybus.adapters import available_adapters
from polybus.cli.errors import friendly_errors
from polybus.core.errors import FilterError, Problem, UnknownProviderError, UnsupportedError
from polybus.core.filters.dialects import Filter, parse_filter, to_json
from polybus.core.hookspecs import FilterSupport


def filter_support(provider: str) -> FilterSupport:
    """The registered filter compiler of `provider`; UnsupportedError when it has none."""
    adapters = available_adapters()
    if provider not in adapters:
        raise UnknownProviderError(provider, list(adapters))
    support = adapters[provider].info.filters
    if support is None:
        names = sorted(n for n, reg in adapters.items() if reg.info.filters is not None)
        raise UnsupportedError(
            "no native filter compiler",
            [Problem("--provider", provider, f"registered for: {', '.join(names)}")],
        )
    return support


def read_filter(text: str) -> Filter:
    """A filter from the command line: Subscriptions API JSON when it starts with '{', else CESQL."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            spec = json.loads(stripped)
        except json.JSONDecodeError as exc:
            rule = f"invalid JSON at position {exc.pos}: {exc.msg}"
            raise FilterError("invalid filter", [Problem("filter", text, rule)]) from None
        return parse_filter(spec)
    return parse_filter(text)


def explain(provider: str, flt: Filter) -> dict[str, Any]:
    """The explanation as plain data: filter, native filter, residual, verdict."""
    compiled = filter_support(provider).compile(flt)
    return {
        "provider": provider,
        "filter": to_json(flt),
        "native": compiled.native,
        "residual": None if compiled.residual is None else to_json(compiled.residual),
        "verdict": compiled.verdict,
    }


@click.group(name="filter")
def filter_group() -> None:
    """Inspect portable subscription filters."""


@filter_group.command(name="explain")
@click.option("--provider", required=True, help="Target provider (see `polybus adapters`).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.argument("filter_text", metavar="FILTER")
@friendly_errors
def explain_command(provider: str, as_json: bool, filter_text: str) -> None:
    """Show the native filter, the residual evaluated client-side, and the verdict.

    FILTER is a CESQL expression or a Subscriptions API filter in JSON.
    """
    support = filter_support(provider)
    result = explain(provider, read_filter(filter_text))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    table = Table(title=support.native_name, show_header=False)
    table.add_column("part", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("filter", json.dumps(result["filter"]))
    native = result["native"]
    table.add_row("native", "(everything passes)" if native is None else _show(native))
    residual = result["residual"]
    table.add_row("residual", "(none)" if residual is None else json.dumps(residual))
    table.add_row("verdict", result["verdict"])
    Console(width=120).print(table)


def _show(native: Any) -> str:
    return native if isinstance(native, str) else json.dumps(native)
