"""Consistency without distributed transactions: transactional outbox, relay, event journal.

Needs the `sql` extra (SQLAlchemy 2; PostgreSQL through `postgres`). The
inbox and saga modules are imported by their own module paths
(`polybus.core.consistency.inbox`, `...saga`). See docs/outbox.md.
"""

from __future__ import annotations

from polybus.core.consistency.journal import (
    Journal,
    JournalPlugin,
    JournalSettings,
    connect_with_journal,
    install_journal,
    parse_journal,
)
from polybus.core.consistency.outbox import Outbox, OutboxTransaction, outbox_table
from polybus.core.consistency.relay import Relay, RelaySettings, RelayStats
from polybus.core.consistency.tables import create_tables, metadata

__all__ = [
    "Journal",
    "JournalPlugin",
    "JournalSettings",
    "Outbox",
    "OutboxTransaction",
    "Relay",
    "RelaySettings",
    "RelayStats",
    "connect_with_journal",
    "create_tables",
    "install_journal",
    "metadata",
    "outbox_table",
    "parse_journal",
]
