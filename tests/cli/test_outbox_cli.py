"""`polybus outbox relay|status`, `polybus replay` and the relay under `polybus run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine

from polybus.adapters.local.durable import DurableBus
from polybus.cli.main import cli
from polybus.cli.replay import parse_since
from polybus.core.consistency.journal import connect_with_journal
from polybus.core.consistency.outbox import Outbox
from polybus.core.contract import DeliveryPolicy, SubscriptionSpec
from polybus.core.events import new_event

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner in an empty directory with no configuration in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLYBUS_CONFIG", raising=False)
    monkeypatch.delenv("POLYBUS_PROVIDER", raising=False)
    return CliRunner()


def _durable_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "polybus.toml"
    path.write_text(f'provider = "local"\n[local]\ndurable = true\npath = "{tmp_path / "bus.db"}"\n{extra}')
    return path


def _write_outbox(url: str, count: int) -> None:
    engine = create_engine(url)
    outbox = Outbox(engine)
    with engine.begin() as conn, outbox.transaction(conn) as tx:
        tx.publish([new_event("t", "/s", {"n": i}, id=f"e{i}") for i in range(count)], topic="orders")
    engine.dispose()


def _received(bus_path: Path, sub: str, want: int, limit: float = 30.0) -> list[str]:
    checker = DurableBus(bus_path)
    ids: list[str] = []
    deadline = time.monotonic() + limit
    try:
        while len(ids) < want and time.monotonic() < deadline:
            for delivery in checker.receive(sub, 100, 0.2):
                ids.append(delivery.event.get_id())
                delivery.ack()
    finally:
        checker.close()
    return ids


def _provision(bus_path: Path, sub: str, topic: str = "orders") -> None:
    bus = DurableBus(bus_path)
    bus.provision(SubscriptionSpec(sub, topic, None, DeliveryPolicy()))
    bus.close()


def test_relay_once_publishes_and_status_counts(runner: CliRunner, tmp_path: Path) -> None:
    """`outbox relay --once` publishes the rows to the configured bus; `outbox status` counts them."""
    db = f"sqlite:///{tmp_path / 'app.db'}"
    config = _durable_config(tmp_path)
    _provision(tmp_path / "bus.db", "check")
    _write_outbox(db, 3)
    result = runner.invoke(cli, ["--config", str(config), "outbox", "status", "--db", db, "--json"])
    assert result.exit_code == 0 and '"pending": 3' in result.output
    result = runner.invoke(cli, ["--config", str(config), "outbox", "relay", "--db", db, "--once"])
    assert result.exit_code == 0, result.output
    assert "published 3 event(s)" in result.output
    assert _received(tmp_path / "bus.db", "check", 3) == ["e0", "e1", "e2"]
    result = runner.invoke(cli, ["--config", str(config), "outbox", "status", "--db", db])
    assert "pending 0 (failing 0), published 3" in result.output


def test_outbox_table_gives_the_url_and_unknown_keys_are_one_line(runner: CliRunner, tmp_path: Path) -> None:
    """The [outbox] url is the default --db; an unknown key fails in one line with a did-you-mean."""
    db = f"sqlite:///{tmp_path / 'app.db'}"
    _write_outbox(db, 1)
    good = _durable_config(tmp_path, f'[outbox]\nurl = "{db}"\n')
    result = runner.invoke(cli, ["--config", str(good), "outbox", "relay", "--once"])
    assert result.exit_code == 0 and "published 1 event(s)" in result.output
    bad = _durable_config(tmp_path, f'[outbox]\nurl = "{db}"\nleese = 3\n')
    result = runner.invoke(cli, ["--config", str(bad), "outbox", "relay", "--once"])
    assert result.exit_code == 1
    assert "outbox.leese" in result.output and "did you mean 'lease'" in result.output
    assert "Traceback" not in result.output


def test_relay_without_a_database_is_a_usage_error(runner: CliRunner) -> None:
    """Without --db and without an [outbox] url the relay refuses to start, in one line."""
    result = runner.invoke(cli, ["outbox", "relay", "--once"])
    assert result.exit_code == 2 and "give --db URL" in result.output


def test_replay_from_the_journal_reaches_only_that_subscription(runner: CliRunner, tmp_path: Path) -> None:
    """`replay --from-journal` republishes the journal's events for the named subscription only."""
    journal = f"sqlite:///{tmp_path / 'journal.db'}"
    config = _durable_config(tmp_path, f'[journal]\nurl = "{journal}"\nretention = "1d"\n')
    _provision(tmp_path / "bus.db", "target")
    _provision(tmp_path / "bus.db", "other")
    with connect_with_journal(str(config)) as bus:
        bus.publish([new_event("t", "/s", {"n": i}, id=f"e{i}") for i in range(2)], topic="orders")
    assert sorted(_received(tmp_path / "bus.db", "other", 2)) == ["e0", "e1"]
    assert sorted(_received(tmp_path / "bus.db", "target", 2)) == ["e0", "e1"]
    result = runner.invoke(
        cli,
        ["--config", str(config), "replay", "--since", "1h", "-s", "target", "--topic", "orders", "--from-journal"],
    )
    assert result.exit_code == 0, result.output
    assert "replayed 2 event(s) from the journal to target" in result.output
    assert sorted(_received(tmp_path / "bus.db", "target", 2)) == ["e0", "e1"]


def test_replay_errors_are_one_line(
    runner: CliRunner, tmp_path: Path, azure_emulator: Any
) -> None:
    """A bad --since, and azure without a journal, fail in one line naming the fix."""
    result = runner.invoke(cli, ["replay", "--since", "yesterday-ish", "-s", "x"])
    assert result.exit_code == 2 and "ISO 8601" in result.output
    config = tmp_path / "azure.toml"
    config.write_text(
        f'provider = "azure"\n[azure]\nendpoint = "{azure_emulator.endpoint}"\nkey = "{azure_emulator.key}"\n'
    )
    result = runner.invoke(cli, ["--config", str(config), "replay", "--since", "1h", "-s", "x"])
    assert result.exit_code == 1
    assert "[journal]" in result.output and "Traceback" not in result.output
    assert azure_emulator.key not in result.output


def test_parse_since_reads_iso_times_and_durations() -> None:
    """--since takes ISO 8601 (naive means UTC) or a duration back from now."""
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_since("2026-01-31T10:00:00", now) == datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
    assert parse_since("2026-01-31T10:00:00+02:00", now).utcoffset() == timedelta(hours=2)
    assert parse_since("90m", now) == now - timedelta(minutes=90)


def test_run_relays_the_outbox_in_process(tmp_path: Path) -> None:
    """`polybus run --outbox-db URL` relays the outbox in the worker; SIGTERM still exits 0."""
    db = f"sqlite:///{tmp_path / 'app.db'}"
    config = _durable_config(tmp_path)
    _provision(tmp_path / "bus.db", "check")
    _write_outbox(db, 2)
    with (tmp_path / "run.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "polybus", "--config", str(config), "run",
             "examples.inventory_app:app", "--outbox-db", db],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        received = _received(tmp_path / "bus.db", "check", 2, limit=60)
        deadline = time.monotonic() + 60  # SIGTERM only once the app has started serving
        while ": started on" not in (tmp_path / "run.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert sorted(received) == ["e0", "e1"], (tmp_path / "run.log").read_text()[-2000:]
    assert code == 0


def test_unreachable_database_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    """A database that cannot be reached or a URL with no driver fails in one line, not a traceback."""
    config = _durable_config(tmp_path)
    for url, expected in (
        ("postgresql+psycopg://nobody:s3cret-pw@127.0.0.1:1/none", "OperationalError"),
        ("nosuchdb://x/y", "NoSuchModuleError"),
    ):
        result = runner.invoke(cli, ["--config", str(config), "outbox", "relay", "--db", url, "--once"])
        assert result.exit_code == 1, result.output
        assert expected in result.output and "Traceback" not in result.output
        assert "s3cret-pw" not in result.output


def test_relay_command_runs_until_sigterm(tmp_path: Path) -> None:
    """`outbox relay` keeps relaying new rows until SIGTERM, then exits 0 with a summary."""
    db = f"sqlite:///{tmp_path / 'app.db'}"
    config = _durable_config(tmp_path)
    _provision(tmp_path / "bus.db", "check")
    _write_outbox(db, 1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "polybus", "--config", str(config), "outbox", "relay", "--db", db],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        first = _received(tmp_path / "bus.db", "check", 1, limit=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert first == ["e0"]
    assert proc.returncode == 0, err
    assert "published 1 event(s)" in err
