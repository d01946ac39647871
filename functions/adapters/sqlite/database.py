"""The SQLite ledger's file: its connections, its transactions, and its checkpoints.

Each write is one `BEGIN IMMEDIATE` transaction, so the read-decide-write of a claim is atomic
even between separate processes sharing the file (the embedded default's `dev` server and its
runners, or several functions-framework workers). WAL mode lets readers proceed meanwhile.
Threads of one process take turns at writing on a lock of their own first: SQLite's busy handler
makes a writer that finds the file locked sleep 1, 2, 5, 10… ms however soon the lock is free,
which was the serving tail under concurrent requests (issue 19); across processes it still
decides. Checkpoints (copying the WAL into the file, and its fsync) run on a thread of their own,
not inside a writer's commit, where they held every other writer for milliseconds.
SQLite errors become `TransientError`: the caller answers non-2xx and the platform retries.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from events.errors import TransientError
from functions.adapters.sqlite.schema import migrate

# A writer's commit checkpoints by itself only past this many WAL pages (SQLite's default is
# 1,000): the checkpointer below keeps the WAL shorter, and this is the net if it cannot.
WAL_SAFETY_PAGES = 10_000
CHECKPOINT_EVERY = 100  # commits by this process between the checkpointer's turns


def connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    """A new connection to the ledger file, set up as every connection of the ledger is; a
    read-only one (`mode=ro`) can change nothing in the file."""
    if read_only:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        db.row_factory = sqlite3.Row
        return db
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA wal_autocheckpoint={WAL_SAFETY_PAGES}")
    return db


class SharedFile:
    """What the threads of this process share about one ledger file (issue 19):

    - one connection that its writers take turns on, under a lock. SQLite drops a connection's
      whole page cache whenever another connection has written, so with a connection per thread
      every transaction started cold; the writers' own connection stays warm. Readers keep a
      connection per thread and never wait for a writer.
    - a checkpointer. A checkpoint inside a commit made that commit's writer, and every writer
      waiting for the lock, wait for the copy and its fsync: about a third of a new event's time
      in process. Here a daemon thread checkpoints (PASSIVE: beside writers and readers, never
      blocking them) after every CHECKPOINT_EVERY commits.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writers = threading.RLock()
        self._writer: tuple[int, sqlite3.Connection] | None = None  # (the process that opened it, it)
        self.commits = 0
        self.due = threading.Event()
        self.checkpointer: threading.Thread | None = None

    def writer(self) -> sqlite3.Connection:
        """The writers' connection; call with `writers` held. A forked child opens its own."""
        if self._writer is None or self._writer[0] != os.getpid():
            self._writer = (os.getpid(), connect(self.path))
        return self._writer[1]

    def committed(self) -> None:
        """Called by a writer that holds `writers`, after its commit."""
        self.commits += 1
        if self.commits % CHECKPOINT_EVERY:
            return
        if self.checkpointer is None or not self.checkpointer.is_alive():  # not started, or forked
            self.checkpointer = threading.Thread(
                target=self._checkpoints, name="sqlite-checkpoint", daemon=True
            )
            self.checkpointer.start()
        self.due.set()

    def _checkpoints(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:  # the file is gone (a scratch folder removed): the next commit starts anew
            return
        while True:
            self.due.wait()
            self.due.clear()
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:  # the next turn tries again; past WAL_SAFETY_PAGES a commit does
                continue


_FILES: dict[Path, SharedFile] = {}  # per ledger file, in this process
_FILES_LOCK = threading.Lock()


class Database:
    """One ledger file, opened (and brought up to the schema) once: a write transaction, a read
    snapshot, or a single read, each mapping SQLite's errors to `TransientError`. `read_only`:
    opened as it is, to be read (`routes plan`); a write fails."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._local = threading.local()
        with _FILES_LOCK:
            self._file = _FILES.setdefault(path.resolve(), SharedFile(path.resolve()))
        if read_only:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            migrate(self._connection())
        except sqlite3.Error as exc:
            raise TransientError(f"ledger unavailable: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, for reading."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.path, self.read_only)
        return db

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (`BEGIN IMMEDIATE` … `COMMIT`; rolled back if the block raises)."""
        try:
            with self._file.writers:
                db = self._file.writer()
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                self._file.committed()
        except sqlite3.Error as exc:
            raise TransientError(f"ledger unavailable: {exc}") from exc

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads in one read transaction: one snapshot of the file, one round trip."""
        try:
            db = self._connection()
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise TransientError(f"ledger unavailable: {exc}") from exc

    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            return self._connection().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise TransientError(f"ledger unavailable: {exc}") from exc


class Part:
    """A part of the SQLite ledger: the tables of one port, on the database every part shares."""

    def __init__(self, db: Database) -> None:
        self._db = db
