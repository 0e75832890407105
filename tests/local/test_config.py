"""The [local] settings: every key checked, with did-you-mean, ranges and the mode it applies to."""

from __future__ import annotations

from pathlib import Path

import pytest

from polybus.adapters.local.durable import DurableBus
from polybus.adapters.local.memory import MemoryBus
from polybus.adapters.local.plugin import LocalConfig, make_local_adapter, parse_config
from polybus.core.errors import ConfigError


def test_defaults() -> None:
    """An empty [local] table is the bounded memory bus: 100,000 pending events, 10 s wait."""
    cfg = parse_config({})
    assert cfg == LocalConfig()
    assert (cfg.max_pending, cfg.publish_timeout, cfg.retention_seconds) == (100_000, 10.0, 86_400)


def test_settings_reach_the_buses(tmp_path: Path) -> None:
    """max_pending/publish_timeout shape the memory bus; retention_seconds/busy_timeout the file."""
    memory = make_local_adapter({"max_pending": 7, "publish_timeout": 0.5})
    assert isinstance(memory, MemoryBus)
    assert (memory.max_pending, memory.publish_timeout) == (7, 0.5)
    durable = make_local_adapter(
        {
            "durable": True,
            "path": str(tmp_path / "c.db"),
            "retention_seconds": 60,
            "busy_timeout": 2.5,
        }
    )
    assert isinstance(durable, DurableBus)
    assert (durable.retention_seconds, durable.busy_timeout) == (60, 2.5)
    durable.close()


def test_a_misspelt_key_gets_a_did_you_mean() -> None:
    """An unknown key is refused, naming the closest known key."""
    with pytest.raises(ConfigError) as raised:
        make_local_adapter({"max_pendng": 10})
    [problem] = raised.value.problems
    assert problem.field == "local.max_pendng" and "did you mean 'max_pending'" in problem.rule


def test_every_problem_is_reported_at_once() -> None:
    """Out-of-range values and settings of the other mode are all named in one ConfigError."""
    with pytest.raises(ConfigError) as raised:
        parse_config(
            {"max_pending": 0, "publish_timeout": -1, "retention_seconds": 5, "busy_timeout": 1}
        )
    fields = {p.field: p.rule for p in raised.value.problems}
    assert fields == {
        "local.max_pending": "must be >= 1",
        "local.publish_timeout": "must be >= 0",
        "local.retention_seconds": "applies to durable = true",
        "local.busy_timeout": "applies to durable = true",
    }


def test_memory_settings_are_refused_for_the_durable_bus() -> None:
    """max_pending and retention mean nothing to the durable bus; the error points to retention_seconds."""
    with pytest.raises(ConfigError) as raised:
        parse_config({"durable": True, "max_pending": 5, "retention": 10})
    rules = {p.field: p.rule for p in raised.value.problems}
    assert set(rules) == {"local.max_pending", "local.retention"}
    assert "retention_seconds" in rules["local.retention"]


def test_wrong_types_are_refused() -> None:
    """Types are checked before anything is built (a string timeout, a bool bound)."""
    with pytest.raises(ConfigError) as raised:
        parse_config({"publish_timeout": "10s", "max_pending": True})
    assert {p.field for p in raised.value.problems} == {
        "local.publish_timeout",
        "local.max_pending",
    }
