"""The `Sink` port: where results and quarantined events go. Adapters: `JsonlSink` (here) and
`PubsubSink` (functions/pubsub_sink.py).

A JSONL sink appends one JSON document per line, under an exclusive file lock so lines from
concurrent processes never interleave.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol


class Sink(Protocol):
    def publish(self, document: Mapping[str, object]) -> None:
        """Deliver one document; return only once it is delivered (raise TransientError if not)."""
        ...


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
