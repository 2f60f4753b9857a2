"""The team catalog through PgBouncer in transaction mode (Debian's package).

A team of a hundred puts PgBouncer before PostgreSQL: Ferry must work through
it unchanged (no server-side prepared statements, transaction-scoped locks
only) and its schema upgrade must run there too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from desktop_app.core.catalog.schema import FileStatus
from desktop_app.core.check.findings import CheckOptions
from desktop_app.core.model.states import TransferState
from desktop_app.core.runtime.ferry import Ferry
from tests.conftest import MemoryKeyring, WeedServer, environment_at, save_test_profile


def test_uploads_copies_and_a_check_work_through_pgbouncer(
    pgbouncer: str, weed: WeedServer, bucket: str, tmp_path: Path
) -> None:
    env = environment_at(tmp_path / "home", MemoryKeyring())
    save_test_profile(
        env, endpoint_url=weed.endpoint_url, bucket=bucket, catalog_url=pgbouncer, concurrency=4
    )
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(40):
        (folder / f"f{i:02d}.txt").write_text(f"file {i % 30}\n" * (i % 30 + 1))  # 10 copies
    with Ferry.open(env) as ferry:
        records = ferry.upload([folder])
        assert {r.state for r in records} == {TransferState.DONE}, [r.error for r in records]
        assert sum(r.copy_source_key is not None for r in records) == 10
        for record in records:
            row = ferry.catalog.live(bucket, record.key)
            data = Path(record.source_path).read_bytes()
            assert row is not None
            assert row.status is FileStatus.ACTIVE
            assert row.sha256 == hashlib.sha256(data).hexdigest()
        report = ferry.check(CheckOptions(grace_seconds=0))
        assert report.consistent
        assert report.scanned.rows == 40
