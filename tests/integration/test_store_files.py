"""The local store's files stay bounded: FerretDB's SQLite write-ahead log is checkpointed and
truncated even while readers never stop (tools/ferretdb/main.go)."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest

from app.store import is_ferretdb
from tools.processes import wait_until

MIB = 1024 * 1024


@pytest.fixture
def wal_file(db, run_dir: Path) -> Path:
    if os.environ.get("MONGO_URI") or not is_ferretdb(db):
        pytest.skip("the write-ahead log is the local FerretDB's")
    return run_dir / "mongo" / f"{db.name}.sqlite-wal"


def test_the_write_ahead_log_is_truncated_under_continuous_reads(db, wal_file):
    collection = db[f"wal_{uuid.uuid4().hex[:8]}"]
    stop = threading.Event()

    def read_until_stopped() -> None:
        while not stop.is_set():
            collection.find_one({"_id": "absent"})
            list(collection.find().limit(50))

    readers = [threading.Thread(target=read_until_stopped) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        # The log is seen holding the writes at least once. Its size is read after each batch:
        # a checkpoint may truncate it between two batches, and a log that an earlier test
        # grew is written over from its start, so neither its final size nor its growth
        # tells whether the writes went through it.
        largest = 0
        for batch in range(40):
            collection.insert_many([{"_id": f"{batch}-{n}", "pad": "x" * 500} for n in range(500)])
            largest = max(largest, wal_file.stat().st_size)
        assert largest > 2 * MIB
        wait_until(lambda: wal_file.stat().st_size < MIB, 45, "the write-ahead log to be truncated", 0.5)
    finally:
        stop.set()
        for reader in readers:
            reader.join(10)
        collection.drop()
