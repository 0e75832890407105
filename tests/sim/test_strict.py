"""A strict scenario schema: unknown keys, one problem per mistake, unreadable files, result keys vs user names."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from polybus.cli.sim import sim_group
from polybus.core.errors import ConfigError, ValidationError
from polybus.sim.loader import load_scenario, parse_scenario
from polybus.sim.results import to_json
from polybus.sim.runner import run_scenario
from polybus.sim.schema import scenario_schema

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
CART = SCENARIOS / "shopping_cart.yaml"


def _one(**service: object) -> dict:
    return {
        "workload": {"x": {"rate": 5}},
        "topologies": {
            "t": {"entry": {"x": "s"}, "services": {"s": {"service_time": 0.01, **service}}}
        },
    }


def test_unknown_keys_are_errors_with_did_you_mean(tmp_path: Path) -> None:
    """`wrokers: 4` and `durration: 300` are unknown keys naming the file, the YAML path and the key meant."""
    bad = tmp_path / "typo.yaml"
    bad.write_text(yaml.safe_dump({**_one(wrokers=4), "durration": 300}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_scenario(bad)
    text = str(err.value)
    assert str(bad) in text
    fields = {p.field: p.rule for p in err.value.problems}
    assert "did you mean 'workers'?" in fields["topologies.t.services.s.wrokers"]
    assert "did you mean 'duration'?" in fields["durration"]
    assert len(err.value.problems) == 2


def test_each_problem_is_reported_once() -> None:
    """`median: "fast"` is one problem (the value written and the rule), not a second one about a value never written."""
    raw = _one(service_time={"dist": "lognormal", "median": "fast", "sigma": 0.3})
    with pytest.raises(ConfigError) as err:
        parse_scenario(raw, "f.yaml")
    assert [(p.field, p.value) for p in err.value.problems] == [
        ("topologies.t.services.s.service_time.median", "fast")
    ]
    assert "must be a number > 0" in str(err.value)


def test_a_misspelt_required_key_is_one_problem() -> None:
    """`sgima` for `sigma` reports the unknown key with its suggestion, not also 'sigma is required'."""
    raw = _one(service_time={"dist": "lognormal", "median": 0.1, "sgima": 0.3})
    with pytest.raises(ConfigError) as err:
        parse_scenario(raw)
    assert len(err.value.problems) == 1 and "did you mean 'sigma'?" in err.value.problems[0].rule


def test_bad_topic_override_is_a_load_error_not_a_crash() -> None:
    """A topic override with a wrong type or an unknown profile field fails at load, naming the path."""
    raw = {
        "workload": {"x": {"rate": 5}},
        "topologies": {"t": {
            "entry": {"x": "s"},
            "topics": {"e": {"publish_quota": "lots", "max_atempts": 3}},
            "services": {"s": {"service_time": 0.01, "publish": ["e"]},
                         "c": {"service_time": 0.01, "consumes": ["e"]}},
        }},
    }  # fmt: skip
    with pytest.raises(ConfigError) as err:
        parse_scenario(raw)
    fields = {p.field for p in err.value.problems}
    assert fields == {"topologies.t.topics.e.publish_quota", "topologies.t.topics.e.max_atempts"}


def test_non_utf8_and_deeply_nested_files_are_validation_errors(tmp_path: Path) -> None:
    """A Latin-1 file and a 5,000-deep YAML list raise ValidationError naming the file, never a traceback."""
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValidationError, match="not UTF-8"):
        load_scenario(latin)
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="nested too deeply"):
        load_scenario(deep)
    shallow_but_deep = tmp_path / "deep2.yaml"
    shallow_but_deep.write_text("name: " + "[" * 40 + "]" * 40 + "\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="nested too deeply"):
        load_scenario(shallow_but_deep)
    result = CliRunner().invoke(sim_group, ["run", str(latin)])
    assert (
        result.exit_code == 1 and "not UTF-8" in result.output and "Traceback" not in result.output
    )


@pytest.mark.parametrize(
    "name", ["t", "start", "end", "percent", "kind", "service", "mean", "values"]
)
def test_user_names_never_collide_with_result_keys(name: str) -> None:
    """A topic and a service named like a result field run and report under their own names."""
    raw = {
        "duration": 20, "warmup": 2, "replications": 2, "provider": "local",
        "workload": {name: {"rate": 20}},
        "faults": [{"service": name, "slowdown": 2, "start": 5, "end": 10}],
        "topologies": {"one": {
            "entry": {name: "front"},
            "services": {
                "front": {"workers": 4, "service_time": 0.001, "publish": [name]},
                name: {"workers": 2, "service_time": 0.01, "consumes": [name]},
            },
        }},
    }  # fmt: skip
    doc = run_scenario(parse_scenario(raw), workers=1)
    run = doc.runs["one"]
    assert run.topics[name].published.value > 0
    assert run.services[name].utilisation.value > 0
    assert run.flows[name].count.value > 0
    data = json.loads(json.dumps(to_json(doc)))
    assert data["runs"]["one"]["topics"][name]["published"]["n"] == 2
    assert data["runs"]["one"]["faults"][0]["service"] == name


def test_sweep_metric_typo_is_an_error_with_did_you_mean(tmp_path: Path) -> None:
    """`sweep --metric flows.checkout.latncy.p99` exits 1 with a did-you-mean before simulating anything."""
    result = CliRunner().invoke(
        sim_group,
        ["sweep", str(CART), "--param", "workload.checkout.rate=10,20", "--metric",
         "flows.checkout.latncy.p99", "-r", "1", "--duration", "5", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "did you mean 'latency'?" in result.output
    assert not list(tmp_path.iterdir())


def test_json_schema_is_published_and_every_catalogue_scenario_validates() -> None:
    """`polybus sim schema` prints a valid draft 2020-12 schema; the catalogue passes it and a typo fails it."""
    result = CliRunner().invoke(sim_group, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema == scenario_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = sorted(SCENARIOS.glob("*.yaml"))
    assert len(files) >= 6
    for path in files:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text("utf-8")))]
        assert not errors, (path.name, errors)
    assert list(validator.iter_errors(_one(wrokers=4)))
