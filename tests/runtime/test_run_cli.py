"""`polybus run`: exit codes, and a supervisor that restarts a worker that dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polybus", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nowhere:app", "cannot import 'nowhere'"),
        ("examples.inventory_app:nope", "has no 'nope'"),
        ("examples.inventory_app:OrderPlaced", "not a polybus.App"),
        ("no-colon", "expected MODULE:ATTR"),
    ],
)
def test_bad_target_is_a_usage_error(target: str, message: str) -> None:
    """A target that is not an App exits 2 with one clear line, never a traceback."""
    result = _run("run", target)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_startup_failure_exits_1(tmp_path: Path) -> None:
    """A configuration the provider refuses exits 1 naming the key, before consuming anything."""
    config = tmp_path / "polybus.toml"
    config.write_text('provider = "local"\n[local]\ndurabel = true\n')
    result = _run("--config", str(config), "run", "examples.inventory_app:app")
    assert result.returncode == 1
    assert "local.durabel" in result.stderr and "did you mean 'durable'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_supervisor_restarts_a_killed_worker_and_stops_on_sigterm(tmp_path: Path) -> None:
    """With --workers 2, a worker killed with SIGKILL is replaced; SIGTERM stops all, exit 0."""
    config = tmp_path / "polybus.toml"
    config.write_text(
        f'provider = "local"\n[local]\ndurable = true\npath = "{tmp_path / "bus.db"}"\n'
    )
    with (tmp_path / "run.log").open("w") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "polybus", "--config", str(config), "run",
             "examples.inventory_app:app", "--workers", "2", "--log-level", "info"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        workers = _children(proc.pid, count=2)
        os.kill(workers[0], signal.SIGKILL)
        replaced = _children(proc.pid, count=2, without=workers[0])
        assert workers[0] not in replaced and workers[1] in replaced
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    text = (tmp_path / "run.log").read_text()
    assert "restarting" in text


def _children(pid: int, count: int, without: int | None = None, limit: float = 30.0) -> list[int]:
    """The live child pids of `pid` once there are `count` of them (excluding `without`)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == without:
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                found.append(int(entry.name))
        if len(found) == count:
            return sorted(found)
        time.sleep(0.1)
    raise AssertionError(f"expected {count} children of {pid}")
