"""The schema heads written in code are the ones the migration scripts end at."""

from __future__ import annotations

import pytest

from desktop_app.core.db.migrate import Schema, alembic_head


@pytest.mark.parametrize("schema", list(Schema))
def test_the_head_in_code_is_the_newest_migration(schema: Schema) -> None:
    # A new migration without updating Schema would leave databases un-upgraded.
    assert schema.head == alembic_head(schema)
