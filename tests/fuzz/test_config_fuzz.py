"""The configuration loader raises only ConfigError: mutated TOML, deep nesting, non-UTF-8 bytes."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polybus.core.config import load_config
from polybus.core.errors import ConfigError
from tests.fuzz.strategies import invalid_utf8, mutated

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
VALID = b"""provider = "azure"

[azure]
endpoint = "http://127.0.0.1:8080"
key = "s3cret"
timeout = 5.0
retries = 3
topics = { orders = "orders-topic" }

[local]
durable = true
path = "polybus.db"
"""


def load(path: Path, content: bytes) -> None:
    """Write `content` and load it; only ConfigError may escape."""
    path.write_bytes(content)
    with contextlib.suppress(ConfigError):
        load_config(path, environ={})


@FUZZ
@given(content=mutated(VALID))
def test_mutated_toml(tmp_path: Path, content: bytes) -> None:
    """A mutated configuration file is loaded or refused with ConfigError, nothing else."""
    load(tmp_path / "polybus.toml", content)


@FUZZ
@given(bad=invalid_utf8, at=st.integers(0, len(VALID)))
def test_non_utf8_config(tmp_path: Path, bad: bytes, at: int) -> None:
    """Invalid UTF-8 anywhere in the file is a ConfigError saying the file must be UTF-8."""
    path = tmp_path / "polybus.toml"
    path.write_bytes(VALID[:at] + bad + VALID[at:])
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert "UTF-8" in str(info.value) or "invalid TOML" in str(info.value)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(depth=st.sampled_from((17, 100, 1_000, 50_000)), shape=st.sampled_from(("array", "table")))
def test_deeply_nested_toml(tmp_path: Path, depth: int, shape: str) -> None:
    """Arrays or inline tables nested deeply are one ConfigError, never RecursionError."""
    if shape == "array":
        value = b"[" * depth + b"1" + b"]" * depth
    else:
        value = b"{a=" * depth + b"1" + b"}" * depth
    path = tmp_path / "polybus.toml"
    path.write_bytes(b"[local]\nx = " + value + b"\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    exc = info.value
    assert "nested" in str(exc)


def test_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    """A directory given as the configuration file is a ConfigError."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    exc = info.value
    assert str(tmp_path) in str(exc)
