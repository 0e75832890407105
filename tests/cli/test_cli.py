"""The polybus command: version, adapters, config, publish, tail, demo, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from polybus.cli.main import cli


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner in an empty directory with no configuration in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLYBUS_CONFIG", raising=False)
    monkeypatch.delenv("POLYBUS_PROVIDER", raising=False)
    return CliRunner()


def test_version(runner: CliRunner) -> None:
    """--version prints the distribution's version."""
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and "polybus, version" in result.output


def test_adapters_lists_local_with_origin(runner: CliRunner) -> None:
    """`adapters` shows each adapter and where it came from."""
    result = runner.invoke(cli, ["adapters"])
    assert result.exit_code == 0
    assert "local" in result.output and "built-in" in result.output


def test_demo_runs_the_shopping_flow(runner: CliRunner) -> None:
    """`demo` runs checkout to confirmation on the embedded bus and prints every hop."""
    result = runner.invoke(cli, ["demo", "--orders", "2"])
    assert result.exit_code == 0, result.output
    for service in ("orders", "inventory", "payments", "confirmations", "notifications"):
        assert service in result.output
    assert "2 order(s) confirmed" in result.output


def test_config_show_prints_effective_config(runner: CliRunner, tmp_path: Path) -> None:
    """`config show --json` prints the effective config and where it came from."""
    path = tmp_path / "polybus.toml"
    path.write_text('provider = "local"\n[local]\ndurable = false\n')
    result = runner.invoke(cli, ["--config", str(path), "config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["provider"] == "local" and shown["local"] == {"durable": False}
    assert shown["source"] == str(path)


def test_malformed_config_is_a_clean_error(runner: CliRunner, tmp_path: Path) -> None:
    """A broken config file gives a one-screen error naming the file, not a traceback."""
    path = tmp_path / "bad.toml"
    path.write_text("provider = [\n")
    result = runner.invoke(cli, ["--config", str(path), "demo"])
    assert result.exit_code == 1
    assert "bad.toml" in result.output and "Traceback" not in result.output


def test_unknown_provider_lists_available(runner: CliRunner) -> None:
    """POLYBUS_PROVIDER naming no adapter fails and lists the available ones."""
    result = runner.invoke(cli, ["demo"], env={"POLYBUS_PROVIDER": "ibm"})
    assert result.exit_code == 1
    assert "unknown provider 'ibm'" in result.output and "local" in result.output


def test_publish_then_tail_on_the_durable_bus(runner: CliRunner, tmp_path: Path) -> None:
    """Events published by one command are printed by `tail` in another, through SQLite."""
    path = tmp_path / "polybus.toml"
    path.write_text(f'[local]\ndurable = true\npath = "{tmp_path / "bus.db"}"\n')
    base = ["--config", str(path)]
    assert (
        runner.invoke(cli, [*base, "tail", "--subscription", "t1", "--timeout", "0.5"]).exit_code
        == 0
    )
    result = runner.invoke(
        cli, [*base, "publish", "--type", "com.x", "--source", "/cli", "--data", '{"n": 1}']
    )
    assert result.exit_code == 0, result.output
    events = [{"type": "com.y", "source": "/file", "data": {"n": 2}}]
    (tmp_path / "e.json").write_text(json.dumps(events))
    assert runner.invoke(cli, [*base, "publish", "--file", str(tmp_path / "e.json")]).exit_code == 0
    result = runner.invoke(
        cli, [*base, "tail", "--subscription", "t1", "--count", "2", "--timeout", "5"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(e["type"], e["data"]) for e in lines] == [("com.x", {"n": 1}), ("com.y", {"n": 2})]


def test_publish_from_stdin(runner: CliRunner) -> None:
    """`publish --file -` reads a JSON event from stdin."""
    result = runner.invoke(
        cli, ["publish", "--file", "-"], input='{"type": "com.z", "source": "/stdin"}'
    )
    assert result.exit_code == 0, result.output
    assert "com.z" in result.output


def test_publish_rejects_invalid_input(runner: CliRunner) -> None:
    """Missing flags and invalid events are reported with the field and the rule."""
    result = runner.invoke(cli, ["publish", "--source", "/x"])
    assert result.exit_code == 1 and "--type" in result.output and "required" in result.output
    result = runner.invoke(cli, ["publish", "--file", "-"], input='{"type": "t", "source": ""}')
    assert result.exit_code == 1 and "source" in result.output and "non-empty" in result.output
    result = runner.invoke(cli, ["publish", "--file", "-"], input="{not json")
    assert result.exit_code == 1 and "not JSON" in result.output
