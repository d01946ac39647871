"""Where a compiled pipeline package comes from: a local file, Cloud Storage or HTTPS.

`package:` in routes.yaml is read the way the Vertex SDK reads a `template_path`:

- a path, relative to routes.yaml;
- `gs://bucket/object` through google-cloud-storage (ADC; honours STORAGE_EMULATOR_HOST);
- an Artifact Registry template, `https://<region>-kfp.pkg.dev/<project>/<repo>/<package>/<tag or
  sha256:…>`, fetched with an ADC access token;
- any other `https://…(.yaml|.yml|.json)`, fetched without credentials (a Google token is never
  sent to a host that is not Artifact Registry).

An Artifact Registry template is also the `templateUri` a Vertex job records (the service takes
only template-registry URIs there), so Vertex shows which template version a run came from. The
spec is always sent inline as well, as the SDK does.
"""

from __future__ import annotations

import re
from pathlib import Path

MAX_TEMPLATE_BYTES = 10 * 1024 * 1024
TIMEOUT_SECONDS = 30.0
ARTIFACT_REGISTRY = re.compile(r"^https://[\w-]+-kfp\.pkg\.dev/.+", re.IGNORECASE)
HTTPS_FILE = re.compile(r"^https://[\w.-]+(:\d+)?/.*\.(json|yaml|yml)$")
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
# The Artifact Registry API, where a tag says which version it names (kfp.registry's
# kfp_pkg_dev.json get_tag_url; its Tag resource is {name, version}: cloud.google.com/
# artifact-registry/docs/reference/rest/v1/projects.locations.repositories.packages.tags)
REGISTRY_API = "https://artifactregistry.googleapis.com/v1"


def problem(location: str) -> str | None:
    """Why `location` cannot name a package, or None if it can (checked when routes load)."""
    if location.startswith("gs://"):
        bucket, _, name = location[len("gs://") :].partition("/")
        return None if bucket and name else "expected gs://bucket/object"
    if location.startswith(("http://", "https://")):
        if ARTIFACT_REGISTRY.match(location) or HTTPS_FILE.match(location):
            return None
        return "expected an Artifact Registry URL (https://REGION-kfp.pkg.dev/…) or https://….yaml/.json"
    return None


def template_uri(location: str) -> str | None:
    """The `templateUri` a Vertex job records for a package read from `location`."""
    return location if ARTIFACT_REGISTRY.match(location) else None


def read_template(location: str, base_dir: Path) -> str:
    """The package text at `location`.

    Raises:
        Exception: whatever reading raised (missing file, HTTP error, no credentials, too large);
            the catalog reports it with the pipeline's name.
    """
    if location.startswith("gs://"):
        data = _read_gcs(location)
    elif location.startswith("https://"):
        data = _read_https(location)
    else:
        return (base_dir / location).read_text(encoding="utf-8")
    if len(data) > MAX_TEMPLATE_BYTES:
        raise ValueError(f"{location} is larger than {MAX_TEMPLATE_BYTES} bytes")
    return data.decode("utf-8")


def _read_gcs(location: str) -> bytes:
    from google.cloud import storage

    bucket, _, name = location[len("gs://") :].partition("/")
    data: bytes = (
        storage.Client()
        .bucket(bucket)
        .blob(name)
        .download_as_bytes(start=0, end=MAX_TEMPLATE_BYTES, timeout=TIMEOUT_SECONDS)
    )
    return data


def _read_https(location: str) -> bytes:
    import requests

    session = requests.Session()
    if ARTIFACT_REGISTRY.match(location):
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(scopes=SCOPES)
        session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
    with session, session.get(location, timeout=TIMEOUT_SECONDS, stream=True) as response:
        response.raise_for_status()
        data = response.raw.read(MAX_TEMPLATE_BYTES + 1, decode_content=True)
    return bytes(data)


def tag_version(location: str) -> str:
    """The version (`sha256:…`) the Artifact Registry tag in `location` names now.

    Raises:
        Exception: whatever asking raised (no credentials, HTTP error, an answer without a version).
    """
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    from events.resources import tagged

    parts = tagged(location)
    if parts is None:
        raise ValueError(f"{location} names no tag")
    tag = (
        f"{REGISTRY_API}/projects/{parts['project']}/locations/{parts['location']}/repositories/"
        f"{parts['repo']}/packages/{parts['package']}/tags/{parts['ref']}"
    )
    credentials, _ = google.auth.default(scopes=SCOPES)
    with AuthorizedSession(credentials) as session:  # type: ignore[no-untyped-call]
        response = session.get(tag, timeout=TIMEOUT_SECONDS)
        response.raise_for_status()
        version = str(response.json()["version"]).rsplit("/", 1)[-1]
    if not version.startswith("sha256:"):
        raise ValueError(f"tag {parts['ref']!r} names {version!r}, not a sha256: version")
    return version


def at_version(location: str, version: str) -> str:
    """`location` with its tag replaced by `version`: the URL of exactly that version."""
    return f"{location.rsplit('/', 1)[0]}/{version}"
