"""Build the adapters the settings name: ledgers and sinks from tables keyed by URL scheme,
and the cluster backends.

    ledger:  sqlite:///PATH            firestore://PROJECT/COLLECTION
    sinks:   jsonl:///PATH             pubsub://projects/P/topics/T

Cloud clients are imported only when their scheme is used, so the embedded default never
loads them and a cold start pays only for what it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from functions.ledger import Ledger
from functions.settings import Settings, SettingsError
from functions.sinks import JsonlSink, Sink

if TYPE_CHECKING:
    from pipelines.kfp_backend import KfpBackend
    from pipelines.vertex_backend import VertexBackend


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


def _jsonl(url: str) -> Sink:
    return JsonlSink(path_of(url))


def _pubsub(url: str) -> Sink:
    from functions.pubsub_sink import PubsubSink

    return PubsubSink(topic=url.removeprefix("pubsub://"))


LEDGERS: Mapping[str, Callable[[str], Ledger]] = {"sqlite": _sqlite, "firestore": _firestore}
SINKS: Mapping[str, Callable[[str], Sink]] = {"jsonl": _jsonl, "pubsub": _pubsub}


def ledger_from(url: str) -> Ledger:
    return LEDGERS[urlsplit(url).scheme](url)


def sink_from(url: str) -> Sink:
    return SINKS[urlsplit(url).scheme](url)


def kfp_backend(settings: Settings) -> KfpBackend:
    """The `kfp` backend for the cluster the settings name."""
    from pipelines.kfp_backend import KfpBackend

    if not settings.kfp_host:
        raise SettingsError("KFP_TRIGGER_KFP_HOST is required: a pipeline has backend: kfp")
    return KfpBackend.for_host(
        settings.kfp_host,
        settings.kfp_namespace,
        token=settings.kfp_token,
        client_id=settings.kfp_client_id,
        token_file=settings.kfp_token_file,
    )


def vertex_backend(settings: Settings) -> VertexBackend:
    """The `vertex` backend for the project and location the settings name."""
    from pipelines.vertex_backend import VertexBackend

    for name in ("vertex_project", "vertex_location", "vertex_pipeline_root"):
        if not getattr(settings, name):
            raise SettingsError(f"KFP_TRIGGER_{name.upper()} is required: a pipeline has backend: vertex")
    return VertexBackend(
        settings.vertex_project,
        settings.vertex_location,
        settings.vertex_pipeline_root,
        service_account=settings.vertex_service_account,
        endpoint=settings.vertex_endpoint,
    )
