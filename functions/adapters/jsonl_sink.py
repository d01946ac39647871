"""The JSONL `Sink` (the embedded default's results and quarantine files).

It appends one JSON document per line, under an exclusive file lock so lines from
concurrent processes never interleave.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Mapping
from pathlib import Path


class JsonlSink:
    def __init__(self, path: Path) -> None:
        self.path = path

    def publish(self, document: Mapping[str, object]) -> None:
        line = json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as out:
            fcntl.flock(out, fcntl.LOCK_EX)
            out.write(line)
            out.flush()

    def read(self) -> list[dict[str, object]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
