"""Plugins: built-in adapters, a third-party adapter through a real entry point, middleware hooks."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent

import polybus.core.hookspecs
from polybus.adapters import available_adapters, connect, plugin_manager
from polybus.adapters.local.memory import MemoryBus
from polybus.core.config import Config
from polybus.core.errors import EventValidationError, ValidationError
from polybus.core.events import new_event
from polybus.core.hookspecs import hookimpl


@pytest.fixture
def installed_third_party(tmp_path: Path) -> Iterator[str]:
    """A real distribution on sys.path declaring a `polybus` entry point."""
    site = tmp_path / "site"
    (site / "thirdparty_bus-1.0.dist-info").mkdir(parents=True)
    (site / "thirdparty_bus-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: thirdparty-bus\nVersion: 1.0\n"
    )
    (site / "thirdparty_bus-1.0.dist-info" / "entry_points.txt").write_text(
        "[polybus]\nthirdparty = thirdparty_bus\n"
    )
    (site / "thirdparty_bus.py").write_text(
        textwrap.dedent(
            """
            from polybus.core.hookspecs import AdapterInfo, hookimpl
            from polybus.adapters.local.memory import MemoryBus

            class ThirdPartyBus(MemoryBus):
                name = "thirdparty"

            @hookimpl
            def polybus_register_adapters(register):
                register(AdapterInfo("thirdparty", lambda settings: ThirdPartyBus(), "a test plugin"))
            """
        )
    )
    sys.path.insert(0, str(site))
    yield "thirdparty"
    sys.path.remove(str(site))
    sys.modules.pop("thirdparty_bus", None)


def test_builtin_local_adapter_is_registered() -> None:
    """The local adapter is a default plugin with a built-in origin."""
    adapters = available_adapters(plugin_manager(load_entrypoints=False))
    assert adapters["local"].origin == "built-in (polybus.adapters.local.plugin)"


def test_entry_point_adapter_is_selected_by_name(installed_third_party: str) -> None:
    """An adapter installed with a `polybus` entry point is chosen by its name in config."""
    pm = plugin_manager(load_entrypoints=True)
    adapters = available_adapters(pm)
    assert "thirdparty-bus 1.0" in adapters["thirdparty"].origin
    bus = connect(Config(provider="thirdparty"), pm=pm)
    assert bus.provider == "thirdparty"
    seen: list[str] = []
    bus.subscribe("s", lambda e: seen.append(e.get_type()))
    bus.publish(new_event("com.x", "/x"))
    bus.drain()
    assert seen == ["com.x"]


def test_tests_do_not_autoload_entry_points(installed_third_party: str) -> None:
    """With autoload disabled (as the suite runs), installed plugins are not loaded."""
    assert "thirdparty" not in available_adapters(plugin_manager())


def test_duplicate_adapter_name_is_an_error() -> None:
    """Two plugins registering the same adapter name is refused with both named."""

    class Clash:
        @hookimpl
        def polybus_register_adapters(self, register: Any) -> None:
            register(polybus.core.hookspecs.AdapterInfo("local", lambda s: MemoryBus()))

    with pytest.raises(ValidationError, match="already registered"):
        available_adapters(plugin_manager([Clash()], load_entrypoints=False))


class Enricher:
    """Adds a trace id to every published event."""

    @hookimpl
    def polybus_before_publish(self, event: CloudEvent, topic: str) -> Mapping[str, Any]:
        return {"traceid": f"trace-{event.get_id()}"}


class Validator:
    """Refuses events of type com.bad on publish and on receive."""

    @hookimpl
    def polybus_before_publish(self, event: CloudEvent, topic: str) -> None:
        if event.get_type() == "com.bad.publish":
            raise EventValidationError("rejected", [])

    @hookimpl
    def polybus_before_handle(self, event: CloudEvent, subscription: str) -> None:
        if event.get_type() == "com.bad.receive":
            raise EventValidationError("rejected on receive", [])


class Tracer:
    """Records outcomes."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[str, str]] = []
        self.published = 0

    @hookimpl
    def polybus_after_publish(self, events: list[CloudEvent], topic: str) -> None:
        self.published += len(events)

    @hookimpl
    def polybus_after_handle(
        self, event: CloudEvent, subscription: str, outcome: str, error: BaseException | None
    ) -> None:
        self.outcomes.append((event.get_type(), outcome))


def test_middleware_enriches_validates_and_traces() -> None:
    """Middleware plugins add attributes, refuse bad events at both ends, and see outcomes."""
    tracer = Tracer()
    pm = plugin_manager([Enricher(), Validator(), tracer], load_entrypoints=False)
    bus = connect(Config(), pm=pm)
    got: list[CloudEvent] = []
    bus.subscribe("s", got.append)
    with pytest.raises(EventValidationError):
        bus.publish(new_event("com.bad.publish", "/x"))
    bus.publish([new_event("com.good", "/x"), new_event("com.bad.receive", "/x")])
    bus.drain()
    assert [e.get_type() for e in got] == ["com.good"]
    assert got[0].get_extension("traceid") == f"trace-{got[0].get_id()}"
    assert tracer.published == 2
    assert sorted(tracer.outcomes) == [("com.bad.receive", "dead-lettered"), ("com.good", "acked")]
    reasons = bus.adapter.dead_letter_reasons("s")  # type: ignore[attr-defined]
    assert len(reasons) == 1 and "rejected by middleware" in reasons[0]


def test_schema_backend_plugin_serves_the_schema_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin's polybus_register_schema_backends scheme is usable as `schema check --registry`."""
    from click.testing import CliRunner

    import polybus.adapters
    from polybus.cli.main import cli
    from polybus.core.schemas.backends import MemoryBackend

    opened: list[str] = []

    class Backends:
        @hookimpl
        def polybus_register_schema_backends(self, register: Any) -> None:
            def open_(rest: str) -> MemoryBackend:
                opened.append(rest)
                return MemoryBackend()

            register("team", open_)

    real = polybus.adapters.plugin_manager
    monkeypatch.setattr(
        "polybus.cli.schema.plugin_manager", lambda: real([Backends()], load_entrypoints=False)
    )
    result = CliRunner().invoke(cli, ["schema", "check", "--registry", "team:orders"])
    assert result.exit_code == 0, result.output
    assert opened == ["orders"]
    assert "nothing to check" in result.output


def test_every_hook_has_a_test_and_a_docs_entry() -> None:
    """Each hookspec is exercised in this module and documented in docs/plugins.md."""
    hooks = [name for name in dir(polybus.core.hookspecs) if name.startswith("polybus_")]
    this_file = Path(__file__).read_text()
    docs = (Path(__file__).parents[2] / "docs" / "plugins.md").read_text()
    for name in hooks:
        assert name in this_file, f"{name} has no test"
        assert name in docs, f"{name} is not documented"
