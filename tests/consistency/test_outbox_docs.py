"""The runnable example of docs/outbox.md works as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "outbox.md"


def test_first_python_example_of_the_outbox_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first Python block of docs/outbox.md writes, relays and delivers one event."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    assert namespace["relay"] is not None and len(namespace["seen"]) == 1  # type: ignore[arg-type]
