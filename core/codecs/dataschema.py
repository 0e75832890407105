"""How an event names a registered schema: the `dataschema` URN and the Protobuf package of its data.

``urn:polybus:schema:<event type>:<version>`` (a URN, so no server has to
exist). The codecs need it to name Protobuf data in an ``Any``; the schema
registry (polybus.core.schemas) re-exports it. It lives here, below both, so
the codecs never import the registry package.
"""

from __future__ import annotations

import re

URN_PREFIX = "urn:polybus:schema:"


def dataschema_uri(event_type: str, version: int) -> str:
    """The `dataschema` value naming a registered schema version."""
    return f"{URN_PREFIX}{event_type}:{version}"


def parse_dataschema(uri: str | None) -> tuple[str, int] | None:
    """(event type, version) from a registry URN; None for any other URI (or none)."""
    if not uri or not uri.startswith(URN_PREFIX):
        return None
    event_type, _, version = uri[len(URN_PREFIX) :].rpartition(":")
    if not event_type or not (version.isascii() and version.isdigit()) or len(version) > 9:
        return None
    return event_type, int(version)


def protobuf_package(event_type: str, version: int) -> str:
    """The protobuf package of a schema version's data message (``<package>.Data``)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", event_type).strip("_").lower() or "event"
    return f"polybus.data.{slug}.v{version}"
