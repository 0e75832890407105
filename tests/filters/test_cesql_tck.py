"""The CESQL v1 conformance suite (TCK): every case of every file, against both evaluators."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from polybus.core.filters import cesql
from polybus.core.filters.cesql.parser import CesqlSyntaxError, parse_expression

#: An event valid for every case that only overrides some attributes.
BASE_EVENT = {
    "specversion": "1.0",
    "id": "myId",
    "source": "localhost.localdomain",
    "type": "myType",
}


class _NoTimestamps(yaml.SafeLoader):
    """YAML loader that keeps RFC 3339 times as strings, as CESQL sees them."""


_NoTimestamps.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def tck_dir() -> Path:
    """The TCK folder: $POLYBUS_CESQL_TCK if set, else the copy beside this file."""
    override = os.environ.get("POLYBUS_CESQL_TCK")
    return Path(override) if override else Path(__file__).parent / "cesql_tck"


def _raw_scalars(text: str, key: str) -> list[str]:
    """The source text of `key` in every case (YAML would read `TRUE` or `0` as non-strings)."""
    root = yaml.compose(text, Loader=_NoTimestamps)
    tests = next(v for k, v in root.value if k.value == "tests")
    return [next(v.value for k, v in case.value if k.value == key) for case in tests.value]


def load_cases() -> list[Any]:
    """One pytest param per TCK case, with id '<file>: <case name>'."""
    params = []
    for path in sorted(tck_dir().glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        suite = yaml.load(text, Loader=_NoTimestamps)
        raw = zip(_raw_scalars(text, "expression"), _raw_scalars(text, "name"), strict=True)
        for case, (expression, name) in zip(suite["tests"], raw, strict=True):
            case = {**case, "expression": expression, "name": name}
            params.append(pytest.param(case, id=f"{path.stem}: {name}"))
    return params


CASES = load_cases()


def event_of(case: dict[str, Any]) -> dict[str, Any]:
    """The case's event as an attribute mapping."""
    if "event" in case:
        return dict(case["event"])
    return {**BASE_EVENT, **case.get("eventOverrides", {})}


def check(case: dict[str, Any], value: Any, error: str | None) -> None:
    """Assert the value (with its type: 1 is not true) and the error kind."""
    assert error == case.get("error")
    if "result" in case:
        expected = case["result"]
        assert (type(value), value) == (type(expected), expected)


def test_tck_has_every_suite() -> None:
    """All 18 TCK files are present, with over 250 cases in all."""
    assert len(list(tck_dir().glob("*.yaml"))) == 18
    assert len(CASES) > 250


@pytest.mark.parametrize("case", CASES)
def test_compiled(case: dict[str, Any]) -> None:
    """cesql.evaluate (the compiled closures) gives the case's result and error."""
    value, error = cesql.evaluate(case["expression"], event_of(case))
    check(case, value, error)


@pytest.mark.parametrize("case", CASES)
def test_tree_walker(case: dict[str, Any]) -> None:
    """The plain tree walker gives the same result and error as the TCK expects."""
    try:
        ast = parse_expression(case["expression"])
    except CesqlSyntaxError:
        value, error = False, "parse"
    else:
        value, error = cesql.evaluate_tree(ast, event_of(case))
    check(case, value, error)
