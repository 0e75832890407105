"""The example App under `polybus run` on every provider: SIGTERM'd under load, restarted, none lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from polybus import connect, new_event

REPO = Path(__file__).resolve().parents[1]
ORDERS = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(config: Path, port: int) -> subprocess.Popen[str]:
    """Start the service; its log goes to a file beside the config (a pipe nobody reads would fill)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with (config.parent / "service.log").open("a", encoding="utf-8") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "polybus", "--config", str(config), "run",
             "examples.inventory_app:app", "--health-port", str(port), "--grace", "10"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip


def _status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _wait_ready(proc: subprocess.Popen[str], port: int, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"service exited with {proc.returncode}"
        if _status(port, "/readyz") == 200:
            return
        time.sleep(0.1)
    raise AssertionError("service never became ready")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["local", "aws", "azure", "gcp"])
def test_service_survives_sigterm_and_restart(
    provider: str, polybus_config: Callable[[str], Path]
) -> None:
    """Orders published while the service is SIGTERM'd and restarted are all reserved."""
    config = polybus_config(provider)
    bus = connect(config)
    reserved: list[str] = []
    bus.subscribe("audit", lambda e: reserved.append(e.get_subject() or ""), topic="inventory")
    port = _free_port()
    service = _start(config, port)
    try:
        _wait_ready(service, port)
        assert _status(port, "/healthz") == 200
        ids = [f"o-{provider}-{n}" for n in range(ORDERS)]
        for n, order in enumerate(ids):
            bus.publish(
                new_event("com.shop.order.placed", "/shop", {"order_id": order, "items": ["sku"]}),
                topic="orders",
            )
            if n == ORDERS // 2:  # under load: stop and restart the service mid-stream
                _stop(service)
                service = _start(config, port)
                _wait_ready(service, port)
        metrics = ""
        deadline = time.monotonic() + 60
        while set(reserved) < set(ids) and time.monotonic() < deadline:
            bus.poll("audit", timeout=0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            metrics = answer.read().decode()
    finally:
        if service.poll() is None:
            _stop(service)
        bus.close()
    assert set(reserved) == set(ids)  # none lost (duplicates are allowed: at least once)
    assert 'polybus_acked_total{app="inventory",subscription="reserve-stock"}' in metrics
