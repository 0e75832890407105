"""Protocol Buffer schemas for the emulator: compile a .proto definition and validate messages.

The definition is compiled with protoc from grpcio-tools (the `emulators`
extra) into a descriptor set, loaded into its own descriptor pool, and, as
Pub/Sub requires, must define exactly one top-level message type. BINARY
messages must parse as that type; JSON messages must parse with protobuf's
JSON mapping (unknown fields are errors).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

Validator = Callable[[bytes, bool], None]  # (data, binary) -> None or raises


class ProtoSchemaError(ValueError):
    """The definition does not compile, or does not define exactly one top-level message."""


def compile_proto(definition: str) -> Validator:
    """A validator for messages of the one top-level message type `definition` declares."""
    try:
        import grpc_tools  # noqa: F401  (protoc ships inside grpcio-tools)
    except ImportError as exc:
        raise ProtoSchemaError(
            "PROTOCOL_BUFFER schemas need protoc: pip install 'polybus[emulators]'"
        ) from exc
    include = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory(prefix="polybus-proto-") as tmp:
        source, out = Path(tmp) / "schema.proto", Path(tmp) / "schema.desc"
        source.write_text(definition, encoding="utf-8")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{tmp}",
                f"-I{include}",
                f"--descriptor_set_out={out}",
                "--include_imports",
                "schema.proto",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise ProtoSchemaError(done.stderr.strip().replace(f"{tmp}/", "") or "protoc failed")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    own = next(f for f in files.file if f.name == "schema.proto")
    if len(own.message_type) != 1:
        raise ProtoSchemaError(
            f"the definition declares {len(own.message_type)} top-level message types; "
            "Pub/Sub needs exactly one"
        )
    full_name = f"{own.package}.{own.message_type[0].name}" if own.package else own.message_type[0].name
    message_class = message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))

    def validate(data: bytes, binary: bool) -> None:
        parsed: Any = message_class()
        if binary:
            parsed.ParseFromString(data)
        else:
            json_format.Parse(data.decode("utf-8"), parsed)

    return validate
