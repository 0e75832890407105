"""The Python examples of docs/consistency.md (inbox and sagas) run as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "consistency.md"


def test_every_python_example_of_the_consistency_page_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The inbox example counts one of three copies; the saga example sends one correlated command."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert "InboxStats(handled=1, duplicates=2)" in capsys.readouterr().out
    assert namespace["runner"].state("o-1").step == 0
    assert namespace["sagas"].saga.name == "order"
    namespace["runner"].engine.dispose()
