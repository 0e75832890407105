"""Avro schema resolution as a compatibility check: can a reader schema read a writer's data?

The rules are the Avro specification's "Schema Resolution": fields matched by
name (or reader alias), a reader field missing from the writer needs a
default, writer fields the reader lacks are skipped, the numeric promotions
int→long→float→double and string↔bytes are allowed, a writer union branch
must be readable by the reader, enum symbols the reader lacks need a reader
default. Each break names the path and why, for people to read.
"""

from __future__ import annotations

from typing import Any

Break = tuple[str, str]  # (path, reason)

PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
NAMED = ("record", "error", "enum", "fixed")


def reader_breaks(reader: Any, writer: Any) -> list[Break]:
    """Every reason data written with `writer` cannot be read with `reader` (empty: compatible)."""
    checker = _Checker(_names(reader), _names(writer))
    return checker.check(reader, writer, "$")


def _names(schema: Any, namespace: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Named types (records, enums, fixed) by full and short name."""
    out = {} if out is None else out
    if isinstance(schema, list):
        for branch in schema:
            _names(branch, namespace, out)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in NAMED:
            name = schema["name"]
            space = schema.get("namespace", namespace)
            full = name if "." in name or not space else f"{space}.{name}"
            out[full] = schema
            out.setdefault(name.rpartition(".")[2], schema)
            namespace = full.rpartition(".")[0]
            for field in schema.get("fields", ()):
                _names(field["type"], namespace, out)
        elif kind == "array":
            _names(schema["items"], namespace, out)
        elif kind == "map":
            _names(schema["values"], namespace, out)
        elif isinstance(kind, dict | list):
            _names(kind, namespace, out)
    return out


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        kind = schema["type"]
        return kind if isinstance(kind, str) else _kind(kind)
    return str(schema)


def _describe(schema: Any) -> str:
    kind = _kind(schema)
    if kind == "union":
        return "union[" + ", ".join(_describe(b) for b in schema) + "]"
    if kind in NAMED and isinstance(schema, dict):
        return f"{kind} {schema.get('name')}"
    return kind


class _Checker:
    def __init__(self, reader_names: dict[str, Any], writer_names: dict[str, Any]) -> None:
        self.reader_names = reader_names
        self.writer_names = writer_names
        self.seen: set[tuple[int, int]] = set()

    def _resolve(self, schema: Any, names: dict[str, Any]) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return names.get(schema, names.get(schema.rpartition(".")[2], schema))
        if isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
            return self._resolve(schema["type"], names)
        if (
            isinstance(schema, dict)
            and schema.get("type") in PRIMITIVES
            and not schema.get("logicalType")
        ):
            return schema["type"]
        return schema

    def check(self, reader: Any, writer: Any, path: str) -> list[Break]:
        reader = self._resolve(reader, self.reader_names)
        writer = self._resolve(writer, self.writer_names)
        rk, wk = _kind(reader), _kind(writer)
        if wk == "union":
            out: list[Break] = []
            for branch in writer:
                if rk == "union":
                    if not any(not self.check(r, branch, path) for r in reader):
                        out.append(
                            (
                                path,
                                f"the writer may send {_describe(branch)}, which no branch of the reader's {_describe(reader)} accepts",
                            )
                        )
                else:
                    out.extend(self.check(reader, branch, path))
            return out
        if rk == "union":
            if any(not self.check(r, writer, path) for r in reader):
                return []
            return [
                (
                    path,
                    f"the reader's {_describe(reader)} has no branch for the writer's {_describe(writer)}",
                )
            ]
        if rk != wk:
            if wk in PROMOTIONS and rk in PROMOTIONS[wk]:
                return []
            return [
                (path, f"type changed: written as {_describe(writer)}, read as {_describe(reader)}")
            ]
        if rk in ("record", "error"):
            return self._record(reader, writer, path)
        if rk == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                return [
                    (
                        path,
                        f"enum symbols {missing} were removed and the reader's enum has no default",
                    )
                ]
            return []
        if rk == "fixed":
            if reader.get("size") != writer.get("size"):
                return [
                    (path, f"fixed size changed from {writer.get('size')} to {reader.get('size')}")
                ]
            return []
        if rk == "array":
            return self.check(reader["items"], writer["items"], path + "[]")
        if rk == "map":
            return self.check(reader["values"], writer["values"], path + "{}")
        return []

    def _record(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[Break]:
        key = (id(reader), id(writer))
        if key in self.seen:  # a recursive type met again inside itself: checked further up
            return []
        self.seen.add(key)
        try:
            return self._fields(reader, writer, path)
        finally:
            self.seen.discard(key)

    def _fields(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[Break]:
        out: list[Break] = []
        rname, wname = reader["name"].rpartition(".")[2], writer["name"].rpartition(".")[2]
        if rname != wname and wname not in reader.get("aliases", ()):
            out.append((path, f"record renamed from {wname} to {rname} without an alias"))
        written = {f["name"]: f for f in writer.get("fields", ())}
        for field in reader.get("fields", ()):
            names = [field["name"], *field.get("aliases", ())]
            source = next((written[n] for n in names if n in written), None)
            where = f"{path}.{field['name']}"
            if source is None:
                if "default" not in field:
                    out.append(
                        (
                            where,
                            "field added without a default: data written without it cannot fill it",
                        )
                    )
                continue
            out.extend(self.check(field["type"], source["type"], where))
        return out
