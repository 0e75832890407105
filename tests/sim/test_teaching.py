"""The teaching kit: --set, predict-then-reveal exercises, templated answers, `sim new`, the notebook API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from polybus.cli.sim import sim_group
from polybus.core.errors import ConfigError, MissingExtraError
from polybus.sim.exercises import fill, template_problems
from polybus.sim.loader import load_scenario
from polybus.sim.lookup import transition
from polybus.sim.runner import run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
CART = str(SCENARIOS / "shopping_cart.yaml")
SHORT = ["-r", "1", "--duration", "15", "--workers", "1"]


def test_set_changes_typed_values_and_errors_name_the_path() -> None:
    """`--set` parses YAML values (int, list index), is repeatable, and a bad path or value names the path."""
    ok = CliRunner().invoke(
        sim_group,
        ["run", CART, *SHORT, "--json", "--set", "workload.checkout.rate=5",
         "--set", "topologies.request.services.gateway.workers=8", "--topology", "request"],
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["runs"]["request"]["flows"]["checkout"]["throughput"]["mean"] < 6
    typo = CliRunner().invoke(
        sim_group, ["run", CART, *SHORT, "--set", "topologies.request.services.billing.wrokers=2"]
    )
    assert typo.exit_code == 1
    assert "topologies.request.services.billing.wrokers" in typo.output
    assert "did you mean 'workers'?" in typo.output
    missing = CliRunner().invoke(
        sim_group, ["run", CART, *SHORT, "--set", "workload.chekout.rate=5"]
    )
    assert missing.exit_code == 1 and "did you mean 'checkout'?" in missing.output
    bad = CliRunner().invoke(
        sim_group, ["run", CART, *SHORT, "--set", "workload.checkout.rate=fast"]
    )
    assert bad.exit_code == 1 and "workload.checkout.rate='fast'" in bad.output


def test_list_items_can_be_overridden_by_index() -> None:
    """`calls.0.retries` and `calls[0].retries` both reach the first call."""
    for path in ("topologies.request.services.gateway.calls.0.retries",
                 "topologies.request.services.gateway.calls[0].retries"):  # fmt: skip
        sc = load_scenario(CART, {path: 3})
        assert sc.topologies["request"].services["gateway"].calls[0].retries == 3
    with pytest.raises(ConfigError, match="no \\[9\\]"):
        load_scenario(CART, {"topologies.request.services.gateway.calls.9.retries": 3})


def test_predict_asks_first_then_reveals_with_units_and_deltas(tmp_path: Path) -> None:
    """`exercise --only 1 --predict` reads the guess from stdin, then shows 'p99 A -> B ms (+N%), expected > +X%' and the filled-in answer."""
    result = CliRunner().invoke(
        sim_group, ["exercise", _small_template(tmp_path), "--only", "1", "--predict", "--workers", "1"],
        input="+25%\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.output
    assert (
        out.index("Your prediction")
        < out.index("you predicted: +25%")
        < out.index("measured: p99 ")
    )
    measured = next(line for line in out.splitlines() if "measured:" in line)
    assert " ms (+" in measured and "expected > +20%" in measured
    answer = next(line for line in out.splitlines() if "answer:" in line)
    assert "{" not in answer and " ms" in answer


def test_check_without_only_gives_verdicts_not_answers(tmp_path: Path) -> None:
    """`exercise --check` over all exercises says whether each holds but reveals no numbers or answers."""
    result = CliRunner().invoke(
        sim_group, ["exercise", _small_template(tmp_path), "--check", "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "holds" in result.output
    assert "answer:" not in result.output and "measured" not in result.output
    predict_all = CliRunner().invoke(
        sim_group, ["exercise", _small_template(tmp_path, "b"), "--predict"]
    )
    assert predict_all.exit_code == 2 and "--predict needs --only N" in predict_all.output


def _small_template(tmp_path: Path, name: str = "a") -> str:
    """`sim new` output, shortened so the exercise runs in a second."""
    CliRunner().invoke(sim_group, ["new", name, "--dir", str(tmp_path)])
    path = tmp_path / f"{name}.yaml"
    text = path.read_text(encoding="utf-8").replace("duration: 120", "duration: 40")
    path.write_text(text.replace("replications: 3 ", "replications: 2 "), encoding="utf-8")
    return str(path)


def test_new_writes_a_commented_template_that_loads_and_refuses_to_overwrite(
    tmp_path: Path,
) -> None:
    """`sim new shop` writes shop.yaml with comments; it loads, validates against its exercises, and a second call refuses."""
    first = CliRunner().invoke(sim_group, ["new", "shop", "--dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    path = tmp_path / "shop.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count("#") > 10 and "name: shop" in text
    scenario = load_scenario(path)
    assert set(scenario.topologies) == {"request", "event"} and scenario.exercises
    again = CliRunner().invoke(sim_group, ["new", "shop", "--dir", str(tmp_path)])
    assert again.exit_code == 1 and "exists" in again.output


def test_answers_are_templates_filled_from_the_measurement() -> None:
    """Every catalogue answer uses only known placeholders and at least one; filling puts units and deltas in."""
    for path in sorted(SCENARIOS.glob("*.yaml")):
        for i, ex in enumerate(load_scenario(path).exercises):
            assert not template_problems(ex, f"exercises[{i}]"), (path.name, i)
            assert "{baseline}" in ex.answer or "{changed}" in ex.answer, (path.name, i)
    ex = load_scenario(CART).exercises[0]
    text = fill(ex, 0.253, 0.347)
    assert "253 ms" in text and "347 ms" in text and "+37%" in text
    assert transition("p99", 0.253, 0.347, "s") == "p99 253 -> 347 ms (+37%)"
    bad = load_scenario(CART).exercises[0].__class__(**{**ex.__dict__, "answer": "{basline} x"})
    assert template_problems(bad, "e")[0].value == "{basline}"


def test_notebook_api_returns_typed_results_and_records() -> None:
    """load_scenario + run_scenario give typed runs; rows() are flat records; to_json() is the documented document."""
    doc = run_scenario(
        load_scenario(CART, {"duration": 15.0, "warmup": 2.0}), replications=1, workers=1
    )
    assert doc.runs["event"].flows["checkout"].latency.p99.value > 0
    rows = doc.rows()
    assert {r["run"] for r in rows} == {"request", "event"} and "response_p99" in rows[0]
    assert doc.to_json()["schema"] == "polybus.sim/1"
    frame = doc.to_dataframe()  # pandas comes with the notebook extra, installed for the tests
    assert len(frame) == len(rows) and set(frame["run"]) == {"request", "event"}


WITHOUT_PANDAS = """
import sys
sys.modules["pandas"] = None
from polybus.sim.loader import load_scenario
from polybus.sim.runner import run_scenario
doc = run_scenario(load_scenario(sys.argv[1], {"duration": 5.0, "warmup": 1.0}), replications=1, workers=1)
try:
    doc.to_dataframe()
except ImportError as exc:
    print(type(exc).__name__, exc)
"""


def test_to_dataframe_without_pandas_is_one_line() -> None:
    """Without pandas, to_dataframe() raises MissingExtraError with the pip command in one line."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PANDAS, CART],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"{MissingExtraError.__name__} RunDocument.to_dataframe() needs pandas, which is not installed: "
        "pip install 'polybus[notebook]'"
    )
