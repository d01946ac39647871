"""The JSONL `Sink` (the embedded default's results and quarantine files).

It appends one JSON document per line, under an exclusive file lock so lines from
concurrent processes never interleave. A file that would grow past `max_bytes` is rotated
first, as logrotate would: `results.jsonl` → `results.jsonl.1` → … → `results.jsonl.<keep>`,
the oldest dropped, so the sinks stay within about (keep + 1) times max_bytes on disk.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from pathlib import Path

MAX_BYTES = 64 * 1024 * 1024  # a file is rotated before it grows past this
KEEP = 4  # rotated files kept


class JsonlSink:
    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep

    def publish(self, document: Mapping[str, object]) -> None:
        line = (json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            with open(self.path, "ab") as out:
                fcntl.flock(out, fcntl.LOCK_EX)
                if not self._current(out.fileno()):
                    continue  # another process rotated it while this one waited: open the new one
                size = os.fstat(out.fileno()).st_size  # after the lock: others may have appended
                if size and size + len(line) > self.max_bytes:
                    self._rotate()
                    continue
                out.write(line)
                out.flush()
                return

    def _current(self, descriptor: int) -> bool:
        """Whether the locked file is still the one at `path` (not rotated away meanwhile)."""
        try:
            return os.stat(self.path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            return False

    def _rotate(self) -> None:
        """Shift path.N → path.N+1 (dropping the last) and path → path.1. Called holding the lock."""
        for number in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{number + 1}"))
        if self.keep:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()

    def read(self) -> list[dict[str, object]]:
        """The documents in the current file (not the rotated ones), oldest first."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
