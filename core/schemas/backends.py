"""Where schemas are kept: a directory of files by default, any `SchemaBackend` otherwise.

Directory layout (reviewable in git)::

    schemas/
      com.example.order.created/
        type.json      # optional: {"compatibility": "backward", "topics": ["orders"], "description": "..."}
        1.json         # JSON Schema (draft 2020-12 unless $schema says otherwise)
        2.avsc         # or Avro

An event type names one folder directly under the root: `type_name_problem`
refuses names that could resolve anywhere else (empty, ``.``, ``..``, a path
separator, a control character), and `DirectoryBackend` checks every path it
builds stays inside its root, so no type name reads or writes outside it.

Other backends register a URL scheme with `register_backend("scheme", factory)`;
`open_backend("scheme:rest")` then builds one. Built in: `memory:` and `dir:PATH`
(a bare path means `dir:`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from polybus.core.errors import Problem
from polybus.core.schemas.errors import (
    SchemaDefinitionError,
    SchemaNotFoundError,
    SchemaValidationError,
)
from polybus.core.schemas.model import EXTENSIONS, Schema, SchemaKind, TypeInfo

TYPE_FILE = "type.json"
MAX_TYPE_NAME = 255  # bytes: the longest file name most file systems allow
TYPE_NAME_RULE = (
    "a registered event type names one folder: 1-255 UTF-8 bytes, "
    "not '.' or '..', no '/', '\\', control characters or lone surrogates"
)
_UNSAFE = re.compile("[\x00-\x1f\x7f/\\\\\ud800-\udfff]")


def type_name_problem(event_type: object) -> Problem | None:
    """Why `event_type` cannot name a schema folder, or None when it can."""
    if (
        isinstance(event_type, str)
        and event_type not in ("", ".", "..")
        and _UNSAFE.search(event_type) is None
        and len(event_type.encode("utf-8")) <= MAX_TYPE_NAME
    ):
        return None
    shown = event_type[:300] if isinstance(event_type, str) else type(event_type).__name__
    return Problem("type", shown, TYPE_NAME_RULE)


def check_type_name(event_type: str) -> None:
    """Raise SchemaValidationError (field `type`) when `event_type` cannot name a schema folder."""
    problem = type_name_problem(event_type)
    if problem is not None:
        raise SchemaValidationError("event type cannot have a schema", [problem])


@runtime_checkable
class SchemaBackend(Protocol):
    """Storage of schemas by event type and version; the registry does the checking."""

    def event_types(self) -> list[str]:
        """Every event type with at least one schema or settings, sorted."""
        ...

    def versions(self, event_type: str) -> list[int]:
        """The type's versions in ascending order (empty when unknown)."""
        ...

    def load(self, event_type: str, version: int) -> Schema:
        """One schema version; SchemaNotFoundError when absent."""
        ...

    def save(self, schema: Schema) -> None:
        """Store a new version (the registry has checked it)."""
        ...

    def type_info(self, event_type: str) -> TypeInfo:
        """The type's settings (defaults when none were saved)."""
        ...

    def save_type_info(self, info: TypeInfo) -> None:
        """Store the type's settings."""
        ...


class MemoryBackend:
    """Schemas in a dict: tests and embedded use."""

    def __init__(self) -> None:
        self._schemas: dict[str, dict[int, Schema]] = {}
        self._info: dict[str, TypeInfo] = {}

    def event_types(self) -> list[str]:
        """Every known event type, sorted."""
        return sorted(set(self._schemas) | set(self._info))

    def versions(self, event_type: str) -> list[int]:
        """The type's versions, ascending."""
        return sorted(self._schemas.get(event_type, {}))

    def load(self, event_type: str, version: int) -> Schema:
        """One stored version."""
        try:
            return self._schemas[event_type][version]
        except KeyError:
            raise SchemaNotFoundError(event_type, version) from None

    def save(self, schema: Schema) -> None:
        """Keep a version."""
        self._schemas.setdefault(schema.event_type, {})[schema.version] = schema

    def type_info(self, event_type: str) -> TypeInfo:
        """Saved settings or the defaults."""
        return self._info.get(event_type) or TypeInfo(event_type)

    def save_type_info(self, info: TypeInfo) -> None:
        """Keep the settings."""
        self._info[info.event_type] = info


class DirectoryBackend:
    """Schemas as files, one folder per event type (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._cache: dict[tuple[str, int], Schema] = {}

    def folder(self, event_type: str) -> Path:
        """The type's folder: always a direct child of the root (SchemaValidationError otherwise)."""
        check_type_name(event_type)
        folder = self.root / event_type
        base = os.path.normpath(os.path.abspath(self.root))
        if os.path.dirname(os.path.normpath(os.path.abspath(folder))) != base:
            raise SchemaValidationError(
                "event type cannot have a schema",
                [Problem("type", event_type, f"resolves outside the registry root {base}")],
            )
        return folder

    def event_types(self) -> list[str]:
        """Folders holding a schema file or a type.json."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir()
            and type_name_problem(p.name) is None
            and (self._files(p.name) or (p / TYPE_FILE).exists())
        )

    def _files(self, event_type: str) -> dict[int, Path]:
        folder = self.folder(event_type)
        if not folder.is_dir():
            return {}
        found: dict[int, Path] = {}
        for path in folder.iterdir():
            if path.suffix in (".json", ".avsc") and path.stem.isdigit():
                version = int(path.stem)
                if version in found:
                    raise SchemaDefinitionError(
                        "two files for one version",
                        [Problem(str(path), version, f"also {found[version].name}")],
                    )
                found[version] = path
        return found

    def versions(self, event_type: str) -> list[int]:
        """Versions named by the files in the type's folder."""
        return sorted(self._files(event_type))

    def load(self, event_type: str, version: int) -> Schema:
        """Read and parse one file (cached)."""
        cached = self._cache.get((event_type, version))
        if cached is not None:
            return cached
        path = self._files(event_type).get(version)
        if path is None:
            raise SchemaNotFoundError(event_type, version)
        kind: SchemaKind = "avro" if path.suffix == ".avsc" else "jsonschema"
        schema = Schema(event_type, version, kind, _read_json(path))
        self._cache[(event_type, version)] = schema
        return schema

    def save(self, schema: Schema) -> None:
        """Write `<root>/<type>/<version>.json|.avsc`."""
        folder = self.folder(schema.event_type)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{schema.version}{EXTENSIONS[schema.kind]}").write_text(schema.text())
        self._cache[(schema.event_type, schema.version)] = schema

    def type_info(self, event_type: str) -> TypeInfo:
        """Settings from type.json, or the defaults."""
        path = self.folder(event_type) / TYPE_FILE
        if not path.exists():
            return TypeInfo(event_type)
        raw = _read_json(path)
        unknown = set(raw) - {"compatibility", "topics", "description"}
        if unknown or not isinstance(raw.get("topics", []), list):
            raise SchemaDefinitionError(
                "invalid type.json",
                [
                    Problem(
                        str(path),
                        sorted(unknown) or raw.get("topics"),
                        "keys are compatibility, topics (a list), description",
                    )
                ],
            )
        return TypeInfo(
            event_type,
            compatibility=raw.get("compatibility", TypeInfo.compatibility),
            topics=tuple(raw.get("topics", ())),
            description=raw.get("description", ""),
        )

    def save_type_info(self, info: TypeInfo) -> None:
        """Write type.json."""
        folder = self.folder(info.event_type)
        folder.mkdir(parents=True, exist_ok=True)
        body = {"compatibility": info.compatibility, "topics": list(info.topics)}
        if info.description:
            body["description"] = info.description
        (folder / TYPE_FILE).write_text(json.dumps(body, indent=2) + "\n")


def _read_json(path: Path) -> dict:  # type: ignore[type-arg]
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SchemaDefinitionError(
            "unreadable schema file", [Problem(str(path), None, str(exc))]
        ) from exc
    if not isinstance(value, dict):
        raise SchemaDefinitionError(
            "unreadable schema file", [Problem(str(path), None, "must hold a JSON object")]
        )
    return value


BackendFactory = Callable[[str], SchemaBackend]
_FACTORIES: dict[str, BackendFactory] = {
    "memory": lambda _rest: MemoryBackend(),
    "dir": lambda rest: DirectoryBackend(rest),
}


def register_backend(scheme: str, factory: BackendFactory) -> None:
    """Make `open_backend("<scheme>:<rest>")` call `factory(rest)`."""
    _FACTORIES[scheme] = factory


def open_backend(location: str | os.PathLike[str]) -> SchemaBackend:
    """A backend from a location: `memory:`, `dir:PATH`, `<registered scheme>:...` or a path."""
    text = os.fspath(location)
    scheme, sep, rest = text.partition(":")
    if sep and scheme in _FACTORIES and len(scheme) > 1:  # 'C:\\...' stays a path
        return _FACTORIES[scheme](rest)
    return DirectoryBackend(text)
