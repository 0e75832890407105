"""The README's Quick start: two lines, the second run verbatim by CI; one variable moves a service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_line_verbatim() -> None:
    """The Quick start has exactly two command lines, and .ci/run runs the second one verbatim."""
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [line for line in quick.strip().splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].endswith("polybus demo")
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert lines[1] in ci


def test_provider_switch_by_environment(tmp_path: Path) -> None:
    """POLYBUS_PROVIDER overrides the file's provider, so one variable moves a service."""
    config = tmp_path / "polybus.toml"
    config.write_text('provider = "nowhere"\n')
    script = "from polybus import connect; print(connect().provider)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "POLYBUS_CONFIG": str(config), "POLYBUS_PROVIDER": "local",
             "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "local"
