"""`ObjectStore` adapters: the landing folder (`landing/<bucket>/<object name>`) and Cloud Storage.

`GcsObjectStore` uses google-cloud-storage (honours STORAGE_EMULATOR_HOST). Object names stay
opaque: the local adapter resolves them under the landing folder and refuses any that escape it.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from events.errors import Refused, TransientError
from functions.service.records import StoredObject


class LocalObjectStore:
    def __init__(self, landing: Path) -> None:
        self.landing = landing.resolve()

    def _path(self, bucket: str, name: str) -> Path | None:
        """The file of object `name`, or None: absent, outside its bucket's folder, or a name this
        file system cannot hold (a segment over 255 bytes: ENAMETOOLONG), which no file has."""
        try:
            path = (self.landing / bucket / name).resolve()
            return path if path.is_relative_to(self.landing / bucket) and path.is_file() else None
        except OSError:
            return None

    def read(self, bucket: str, name: str, limit: int) -> bytes | None:
        path = self._path(bucket, name)
        if path is None:
            return None
        with open(path, "rb") as handle:
            return handle.read(limit)

    def size(self, bucket: str, name: str) -> int | None:
        path = self._path(bucket, name)
        return path.stat().st_size if path is not None else None

    def list(self, bucket: str, prefix: str, limit: int) -> list[str]:
        root = (self.landing / bucket).resolve()
        if not root.is_relative_to(self.landing) or not root.is_dir():
            return []
        names = (path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())
        return sorted(name for name in names if name.startswith(prefix))[:limit]

    def objects(self, bucket: str, prefix: str) -> Iterator[StoredObject]:
        """The files under `landing/<bucket>/`; the generation is the file's modification time in
        nanoseconds, as `kfp-trigger dev`'s watcher gives its events."""
        for name in self.list(bucket, prefix, sys.maxsize):
            path = self._path(bucket, name)
            if path is not None:
                stat = path.stat()
                updated = datetime.fromtimestamp(stat.st_mtime, UTC)
                yield StoredObject(name, stat.st_mtime_ns, stat.st_size, updated)


@contextmanager
def _mapped(bucket: str, missing_is_none: bool = False) -> Iterator[None]:
    """Cloud Storage errors as kfp-trigger's: 403 (this identity may not read the bucket) and a
    bucket that does not exist as `Refused`, with the fix; anything else as `TransientError`.
    `missing_is_none`: the caller answers a missing object itself (a 404 of `read`)."""
    from google.api_core import exceptions

    try:
        yield
    except exceptions.Forbidden as exc:
        raise Refused(
            f"Cloud Storage refuses to let the functions read gs://{bucket}: 403 (grant their "
            "identity roles/storage.objectViewer on the bucket)"
        ) from exc
    except exceptions.NotFound as exc:
        if missing_is_none:
            raise
        raise Refused(f"there is no bucket gs://{bucket}") from exc
    except exceptions.GoogleAPICallError as exc:
        raise TransientError(f"Cloud Storage unavailable: {type(exc).__name__}") from exc


class GcsObjectStore:
    """Object names stay opaque: each is a blob name, never a path."""

    def __init__(self) -> None:
        self._client: Any = None

    def _bucket(self, bucket: str) -> Any:
        if self._client is None:
            from google.cloud.storage import Client

            self._client = Client()
        return self._client.bucket(bucket)

    def read(self, bucket: str, name: str, limit: int) -> bytes | None:
        from google.api_core import exceptions

        try:
            with _mapped(bucket, missing_is_none=True):
                data: bytes = self._bucket(bucket).blob(name).download_as_bytes(start=0, end=limit - 1)
        except exceptions.NotFound:
            return None
        return data

    def size(self, bucket: str, name: str) -> int | None:
        with _mapped(bucket):  # get_blob answers None for a missing object itself
            blob = self._bucket(bucket).get_blob(name)
        return None if blob is None else int(blob.size or 0)

    def list(self, bucket: str, prefix: str, limit: int) -> list[str]:
        with _mapped(bucket):
            blobs = self._bucket(bucket).list_blobs(prefix=prefix, max_results=limit)
            return sorted(str(blob.name) for blob in itertools.islice(blobs, limit))

    def objects(self, bucket: str, prefix: str) -> Iterator[StoredObject]:
        with _mapped(bucket):  # the client pages through the listing as it is consumed
            for blob in self._bucket(bucket).list_blobs(prefix=prefix):
                yield StoredObject(
                    str(blob.name),
                    int(blob.generation),
                    int(blob.size or 0),
                    blob.updated,
                    blob.content_type or "",
                )
