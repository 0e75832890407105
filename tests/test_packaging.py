"""The built wheel: one top-level package, a working demo without extras, one-line missing extras."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OLD_NAMES = {"core", "adapters", "sim", "cli", "scenarios"}


def _run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from this checkout."""
    out = tmp_path_factory.mktemp("wheel")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)], out
    )
    assert built.returncode == 0, built.stderr
    [path] = out.glob("polybus-*.whl")
    return path


@pytest.fixture(scope="module")
def bare_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding the wheel and its base dependencies, no extras."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    installed = _run([str(home / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], home)
    assert installed.returncode == 0, installed.stderr
    return home


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLYBUS_", "PYTHON"))}
    env["PATH"] = f"{home / 'bin'}:{env.get('PATH', '')}"
    return env


def test_wheel_has_only_polybus_at_the_top_level(wheel: Path) -> None:
    """The wheel installs `polybus` and its dist-info, nothing named core, adapters, sim or cli."""
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/")[0] for name in archive.namelist()}
    assert top == {"polybus", wheel.name.split("-py3")[0] + ".dist-info"}


@pytest.mark.slow
def test_bare_install_runs_the_demo(bare_env: Path, tmp_path: Path) -> None:
    """In a fresh venv without extras, site-packages gains only polybus and `polybus demo` runs."""
    site = next((bare_env / "lib").glob("python3*/site-packages"))
    ours = {p.name for p in site.iterdir() if p.name in OLD_NAMES or "polybus" in p.name}
    assert ours == {"polybus", "polybus-0.1.0.dist-info"}
    demo = _run([str(bare_env / "bin" / "polybus"), "demo"], tmp_path, _clean_env(bare_env))
    assert demo.returncode == 0, demo.stderr
    assert "3 order(s) confirmed" in demo.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["emulate", "gcp"], "gcp"),
        (["emulate", "azure"], "azure"),
        (["--config", "{config}", "publish", "--type", "com.x", "--source", "/s"], "gcp"),
    ],
)
def test_missing_extra_is_one_line_with_the_pip_command(
    bare_env: Path, tmp_path: Path, args: list[str], extra: str
) -> None:
    """Without an extra, a command needing it exits 1 with one line naming the pip command."""
    config = tmp_path / "polybus.toml"
    config.write_text('provider = "gcp"\n[gcp]\nproject = "my-project"\n')
    argv = [str(bare_env / "bin" / "polybus"), *(a.replace("{config}", str(config)) for a in args)]
    result = _run(argv, tmp_path, _clean_env(bare_env))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"pip install 'polybus[{extra}]'" in lines[0]
