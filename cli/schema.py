"""`polybus schema check` (compatibility, non-zero exit on a break) and `polybus schema docs` (AsyncAPI)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from polybus.adapters import plugin_manager
from polybus.cli.errors import friendly_errors
from polybus.core.schemas.asyncapi import asyncapi_document
from polybus.core.schemas.backends import register_backend
from polybus.core.schemas.compatibility import CompatibilityReport
from polybus.core.schemas.registry import SchemaRegistry

REGISTRY_OPTION = click.option(
    "--registry",
    "location",
    default="schemas",
    envvar="POLYBUS_SCHEMAS",
    show_default=True,
    help="Schema registry: a directory, or a backend location such as dir:PATH.",
)


@click.group("schema")
def schema_group() -> None:
    """Event schemas: compatibility checks and AsyncAPI docs."""
    plugin_manager().hook.polybus_register_schema_backends(register=register_backend)


@schema_group.command("check")
@REGISTRY_OPTION
@click.option("--type", "event_type", help="Only this event type.")
@click.option(
    "--candidate",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A schema file (.json or .avsc) to check as the next version of --type, without storing it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON (same exit code).")
@friendly_errors
def check_command(
    location: str, event_type: str | None, candidate: Path | None, as_json: bool
) -> None:
    """Check each version against the earlier ones under its type's mode; exit 1 on any break."""
    registry = SchemaRegistry(location)
    reports: list[CompatibilityReport] = []
    if candidate is not None:
        if event_type is None:
            raise click.UsageError("--candidate needs --type")
        definition = json.loads(candidate.read_text())
        if candidate.suffix == ".avsc":
            reports.append(registry.check(event_type, definition, "avro"))
        else:
            reports.append(registry.check(event_type, definition, "jsonschema"))
    else:
        for name in [event_type] if event_type else registry.event_types():
            reports.extend(registry.history_reports(name))
    broken = [r for r in reports if not r.compatible]
    if as_json:
        click.echo(json.dumps(reports_json(reports), indent=2))
        if broken:
            sys.exit(1)
        return
    if not reports:
        click.echo("nothing to check: no event type has two versions")
    for report in reports:
        click.echo(str(report))
    if broken:
        click.echo(f"{len(broken)} breaking change(s)", err=True)
        sys.exit(1)


def reports_json(reports: list[CompatibilityReport]) -> dict[str, Any]:
    """The reports as plain JSON: each version, its mode, what it was checked against, its breaks."""
    return {
        "compatible": all(r.compatible for r in reports),
        "reports": [
            {
                "event_type": r.event_type,
                "version": r.version,
                "mode": r.mode,
                "against": list(r.against),
                "compatible": r.compatible,
                "breaks": [dataclasses.asdict(b) for b in r.breaks],
            }
            for r in reports
        ],
    }


@schema_group.command("docs")
@REGISTRY_OPTION
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here (default: stdout).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)
@click.option("--title", default="polybus events", show_default=True)
@click.option(
    "--app",
    "app_target",
    metavar="MODULE:ATTR",
    default=None,
    help="Document this polybus.App's subscriptions and publications instead.",
)
@friendly_errors
def docs_command(
    location: str, output: Path | None, fmt: str, title: str, app_target: str | None
) -> None:
    """Write an AsyncAPI 3.0 document for the registered event types and their topics.

    With --app, the document describes one App: its subscriptions (with
    filters and policies) and its declared publications.
    """
    if app_target is not None:
        from polybus.app_docs import app_asyncapi
        from polybus.cli.run import load_app

        document = app_asyncapi(load_app(app_target), SchemaRegistry(location))
    else:
        document = asyncapi_document(SchemaRegistry(location), title=title)
    text = (
        json.dumps(document, indent=2) + "\n"
        if fmt == "json"
        else yaml.safe_dump(document, sort_keys=False)
    )
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)
