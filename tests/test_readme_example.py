"""The README's example service runs unchanged on every provider; only the config differs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "inventory_service.py"


def _toml(provider: str, section: dict[str, Any]) -> str:
    lines = [f'provider = "{provider}"', f"[{provider}]"]
    for key, value in section.items():
        lines.append(f"{key} = {value!r}".replace("'", '"').replace("True", "true"))
    return "\n".join(lines) + "\n"


def _run(tmp_path: Path, config: str, env: dict[str, str] | None = None) -> str:
    path = tmp_path / "polybus.toml"
    path.write_text(config)
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        env={**os.environ, **(env or {}), "POLYBUS_CONFIG": str(path), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_quotes_the_example() -> None:
    """The service shown in the README is the file this test runs."""
    readme = (REPO / "README.md").read_text()
    body = EXAMPLE.read_text().split('"""', 2)[2].strip()
    assert body in readme


def test_example_on_local(tmp_path: Path) -> None:
    """With provider = "local" the service handles its own event."""
    out = _run(tmp_path, 'provider = "local"\n')
    assert out.strip() == "reserving ['sku-1'] for o-1"


def test_example_on_aws(tmp_path: Path, aws_env: Any) -> None:
    """With provider = "aws" (moto's server) the same service works unchanged."""
    out = _run(tmp_path, _toml("aws", dict(aws_env.settings())))
    assert out.strip() == "reserving ['sku-1'] for o-1"


def test_example_on_azure(tmp_path: Path, azure_emulator: Any) -> None:
    """With provider = "azure" (our Event Grid emulator) the same service works unchanged."""
    section = dict(azure_emulator.settings())
    out = _run(tmp_path, _toml("azure", section))
    assert out.strip() == "reserving ['sku-1'] for o-1"


def test_example_on_gcp(tmp_path: Path, gcp_emulator: Any) -> None:
    """With provider = "gcp" (our Pub/Sub emulator) the same service works unchanged."""
    section = {**gcp_emulator.settings(), "project": "polybus-readme"}
    out = _run(tmp_path, _toml("gcp", section))
    assert out.strip() == "reserving ['sku-1'] for o-1"


@pytest.mark.parametrize("provider", ["local"])
def test_provider_switch_by_environment(tmp_path: Path, provider: str) -> None:
    """POLYBUS_PROVIDER overrides the file, so one variable moves the service."""
    out = _run(tmp_path, 'provider = "nowhere"\n', env={"POLYBUS_PROVIDER": provider})
    assert "reserving" in out


def test_ci_runs_the_readme_test_line_verbatim() -> None:
    """The Quick start has exactly two command lines, and .ci/run runs the second one verbatim."""
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [line for line in quick.strip().splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].endswith("polybus demo")
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert lines[1] in ci
