"""The `Sink` port: where results and quarantined events go. Adapters: `JsonlSink` (here) and
`PubsubSink` (functions/pubsub_sink.py).

A JSONL sink appends one JSON document per line, under an exclusive file lock so lines from
concurrent processes never interleave, and can echo a one-line summary to the console.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

Echo = Callable[[Mapping[str, object]], None]


class Sink(Protocol):
    def publish(self, document: Mapping[str, object]) -> None:
        """Deliver one document; return only once it is delivered (raise TransientError if not)."""
        ...


class JsonlSink:
    def __init__(self, path: Path, echo: Echo | None = None) -> None:
        self.path = path
        self.echo = echo

    def publish(self, document: Mapping[str, object]) -> None:
        line = json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as out:
            fcntl.flock(out, fcntl.LOCK_EX)
            out.write(line)
            out.flush()
        if self.echo is not None:
            self.echo(document)

    def read(self) -> list[dict[str, object]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
