"""`polybus provision`: what an app's subscriptions need on its provider, as a plan or applied.

``--dry-run`` prints the plan (``--format json|terraform|cloudformation|bicep``)
built by the adapter's provisioning hook, touching nothing. Without it the
subscriptions are provisioned through the adapter, exactly as `polybus run`
would on start, and the plan's resources are listed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from polybus.adapters import available_adapters, connect
from polybus.cli.errors import friendly_errors
from polybus.core.config import Config, load_config
from polybus.core.contract import SubscriptionSpec
from polybus.core.errors import Problem, UnknownProviderError, UnsupportedError
from polybus.core.filters.dialects import parse_filter
from polybus.core.plugins import RegisteredAdapter
from polybus.core.provisioning_plan import FORMATS, ProvisioningPlan, render


def app_specs(app: Any) -> tuple[list[SubscriptionSpec], list[str]]:
    """An App's subscriptions as portable specs, and the topics it declares it publishes to."""
    specs = [
        SubscriptionSpec(
            s.name, s.topic, None if s.filter is None else parse_filter(s.filter), s.policy
        )
        for s in app.subscribers
    ]
    return specs, sorted(app.publications)


def build_plan(
    registry: Mapping[str, RegisteredAdapter],
    config: Config,
    provider: str,
    specs: Sequence[SubscriptionSpec],
    publications: Sequence[str],
) -> ProvisioningPlan:
    """The adapter's plan for `specs`, after the same capability checks as subscribing."""
    if provider not in registry:
        raise UnknownProviderError(provider, list(registry))
    info = registry[provider].info
    for spec in specs:
        info.capabilities.check(spec, provider)
    if info.provisioning is None:
        raise UnsupportedError(
            f"the {provider} adapter cannot plan",
            [Problem("provider", provider, "its registration has no provisioning hook")],
        )
    return info.provisioning.plan(config.settings(provider), specs, publications)


def describe(plan: ProvisioningPlan) -> list[str]:
    """One line per resource (kind, name, what needs it), then the notes and residual filters."""
    lines = [f"{plan.provider}: {len(plan.resources)} resource(s)"]
    lines += [f"  {r.kind:<26} {r.name}  ({r.purpose})" for r in plan.resources]
    lines += [
        f"  residual filter of {name}: {text}" for name, text in plan.residual_filters.items()
    ]
    lines += [f"  note: {note}" for note in plan.notes]
    return lines


def resolve(ctx: click.Context, app: Any, provider: str | None) -> tuple[Config, str]:
    """The configuration (--config over the app's own) and the provider (--provider wins)."""
    config_path = (ctx.obj or {}).get("config_path")
    source = config_path or app.config
    config = source if isinstance(source, Config) else load_config(source)
    return config, provider or app.provider or config.provider


@click.command("provision")
@click.option(
    "--app",
    "app_target",
    metavar="MODULE:ATTR",
    required=True,
    help="The polybus.App to provision.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; create nothing.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="json",
    show_default=True,
    help="The plan's format (with --dry-run).",
)
@click.option("--provider", default=None, help="Provider to plan for (overrides polybus.toml).")
@click.pass_context
@friendly_errors
def provision_command(
    ctx: click.Context, app_target: str, dry_run: bool, fmt: str, provider: str | None
) -> None:
    """Plan (--dry-run) or create what the app's subscriptions need on the provider."""
    from polybus.cli.run import load_app

    app = load_app(app_target)
    config, chosen = resolve(ctx, app, provider)
    specs, publications = app_specs(app)
    plan = build_plan(available_adapters(), config, chosen, specs, publications)
    if dry_run:
        click.echo(render(plan, fmt), nl=False)
        return
    if fmt != "json":
        raise click.UsageError("--format writes a plan: use it with --dry-run")
    with connect(config, provider=chosen) as bus:
        for spec in specs:
            bus.subscribe(
                spec.name, _ignore, topic=spec.topic, filter=spec.filter, policy=spec.policy
            )
            click.echo(f"provisioned {spec.name} (topic {spec.topic}) on {chosen}")
    click.echo("\n".join(describe(plan)))
    if publications:
        click.echo(
            "topics only published to are created on the first publish: "
            + ", ".join(t for t in publications if all(s.topic != t for s in specs))
        )


def _ignore(event: Any) -> None:
    """The handler of a subscription provisioned without a consumer (never called)."""
