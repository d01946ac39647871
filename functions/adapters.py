"""Build the adapters the settings name, from tables keyed by URL scheme.

    ledger:  sqlite:///PATH            firestore://PROJECT/COLLECTION
    sinks:   jsonl:///PATH             pubsub://projects/P/topics/T

Cloud clients are imported only when their scheme is used, so the embedded default never
loads them and a cold start pays only for what it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from functions.ledger import Ledger
from functions.sinks import Echo, JsonlSink, Sink


def path_of(url: str) -> Path:
    """The file a `sqlite:///` or `jsonl:///` URL names."""
    return Path(urlsplit(url).path)


def _sqlite(url: str) -> Ledger:
    from functions.sqlite_ledger import SqliteLedger

    return SqliteLedger(path_of(url))


def _firestore(url: str) -> Ledger:
    from functions.firestore_ledger import FirestoreLedger

    parts = urlsplit(url)
    return FirestoreLedger(project=parts.netloc, collection=parts.path.strip("/"))


def _jsonl(url: str, echo: Echo | None) -> Sink:
    return JsonlSink(path_of(url), echo=echo)


def _pubsub(url: str, echo: Echo | None) -> Sink:
    from functions.pubsub_sink import PubsubSink

    return PubsubSink(topic=url.removeprefix("pubsub://"), echo=echo)


LEDGERS: Mapping[str, Callable[[str], Ledger]] = {"sqlite": _sqlite, "firestore": _firestore}
SINKS: Mapping[str, Callable[[str, Echo | None], Sink]] = {"jsonl": _jsonl, "pubsub": _pubsub}


def ledger_from(url: str) -> Ledger:
    return LEDGERS[urlsplit(url).scheme](url)


def sink_from(url: str, echo: Echo | None = None) -> Sink:
    return SINKS[urlsplit(url).scheme](url, echo)
