"""The one SQLAlchemy `MetaData` every consistency pattern declares its tables on.

Each module (outbox, journal, inbox, saga) defines its own `Table` objects on
`metadata`; `create_tables(engine)` creates what is missing.
"""

from __future__ import annotations

from sqlalchemy import Engine, MetaData

metadata = MetaData()


def create_tables(engine: Engine) -> None:
    """Create every polybus table that does not exist yet (idempotent)."""
    metadata.create_all(engine)
