"""Replications in parallel: same seed same numbers, seeds recorded, clean interruption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polybus.sim.loader import load_scenario
from polybus.sim.output import dumps
from polybus.sim.runner import run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def small_cart():  # type: ignore[no-untyped-def]
    """The shopping-cart scenario cut to 40 simulated seconds."""
    return load_scenario(SCENARIOS / "shopping_cart.yaml", {"duration": 40.0, "warmup": 5.0})


def test_same_seed_same_numbers_in_one_or_two_processes(small_cart) -> None:  # type: ignore[no-untyped-def]
    """Two processes give bit-identical results to one, and the seeds are in the document."""
    one = run_scenario(small_cart, replications=2, workers=1)
    two = run_scenario(small_cart, replications=2, workers=2)
    assert one.runs == two.runs
    assert one.replication_seeds == ((42, 0), (42, 1))
    assert one.completed_replications == 2 and not one.interrupted


def test_document_is_strict_json(small_cart) -> None:  # type: ignore[no-untyped-def]
    """The document serialises without NaN and carries the schema name and both topologies."""
    doc = json.loads(dumps(run_scenario(small_cart, replications=2, workers=1)))
    assert doc["schema"] == "polybus.sim/1"
    assert set(doc["runs"]) == {"request", "event"}
    lat = doc["runs"]["event"]["flows"]["checkout"]["latency"]["p99"]
    assert set(lat) >= {"mean", "ci95", "halfwidth", "n", "values"}


def test_interrupt_reports_what_completed(small_cart) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C after the first task keeps its result and marks the document interrupted."""

    def stop(done: int, total: int) -> None:
        if done == 1:
            raise KeyboardInterrupt

    doc = run_scenario(small_cart, replications=3, workers=1, progress=stop)
    assert doc.interrupted
    assert doc.tasks_completed == 1 and doc.completed_replications == 0
    assert list(doc.runs) == ["request"]


def test_providers_compare_under_common_random_numbers(small_cart) -> None:  # type: ignore[no-untyped-def]
    """compare --providers runs broker topologies once per provider, broker-free ones once, on the same seeds."""
    doc = run_scenario(
        small_cart,
        replications=2,
        workers=1,
        topologies=["request", "event"],
        providers=["aws", "gcp"],
    )
    assert set(doc.runs) == {"request", "event@aws", "event@gcp"}
    aws, gcp = doc.runs["event@aws"], doc.runs["event@gcp"]
    assert aws.services["billing"].utilisation.values == pytest.approx(
        gcp.services["billing"].utilisation.values, rel=0.01
    )
    assert aws.cost.total > gcp.cost.total > 0


def test_interrupt_terminates_the_process_pool(small_cart) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C during a 2-process run stops the workers at once and keeps the completed task."""

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    doc = run_scenario(small_cart, replications=4, workers=2, progress=stop)
    assert doc.interrupted and doc.tasks_completed == 1 and doc.tasks_total == 8
