"""Every scenario loads, and every teaching exercise's expected answer still holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from polybus.sim.exercises import check, exercises
from polybus.sim.loader import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
FILES = sorted(SCENARIOS.glob("*.yaml"))
CASES = [(f, i) for f in FILES for i in range(len(exercises(f)))]


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_scenario_loads_and_is_documented(path: Path) -> None:
    """Each catalogue file validates, has two or three exercises and a README section with its run command."""
    scenario = load_scenario(path)
    assert scenario.topologies
    assert 2 <= len(exercises(path)) <= 3
    readme = (SCENARIOS / "README.md").read_text(encoding="utf-8")
    assert f"scenarios/{path.name}" in readme


@pytest.mark.slow
@pytest.mark.parametrize(("path", "index"), CASES, ids=[f"{f.stem}-{i}" for f, i in CASES])
def test_exercise_answer_holds(path: Path, index: int) -> None:
    """Running the exercise's change against the baseline (same seeds) gives the documented answer."""
    outcome = check(path, exercises(path)[index], workers=1)
    assert outcome.passed, (outcome.question, outcome.failures)
