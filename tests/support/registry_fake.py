"""An offline Artifact Registry for KFP templates: what `track:` asks (a tag's version) and what
it downloads (a version's package), as the real one answers:

- a tag: GET {api}/projects/P/locations/L/repositories/R/packages/PKG/tags/TAG answers the Tag
  resource `{name, version}`, `version` the full name of a version `…/versions/sha256:HEX`
  (cloud.google.com/artifact-registry/docs/reference/rest/v1/projects.locations.repositories.packages.tags;
  kfp.registry's kfp_pkg_dev.json get_tag_url); an unknown tag is 404 in Google's error shape;
- a package: GET {host}/PKG/REF, REF a tag or `sha256:HEX` (kfp_pkg_dev.json download_tag_url and
  download_version_url); versions are `sha256:` of the uploaded file and tags never start with it
  (kfp/registry/registry_client.py, _VERSION_PREFIX);
- both want a bearer token (401 without one).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from werkzeug.wrappers import Request, Response


class FakeRegistry:
    def __init__(
        self, token: str, project: str = "acme", location: str = "europe-west1", repo: str = "pipelines"
    ) -> None:
        self.token, self.project, self.location, self.repo = token, project, location, repo
        self.versions: dict[str, dict[str, str]] = {}  # package → version → text
        self.tags: dict[str, dict[str, str]] = {}  # package → tag → version
        self.down = False  # answer 503 to everything
        self.asked: list[str] = []

    def upload(self, package: str, text: str, tag: str) -> str:
        version = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        self.versions.setdefault(package, {})[version] = text
        self.tags.setdefault(package, {})[tag] = version
        return version

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.asked.append(request.path)
        return self._answer(request)(environ, start_response)

    def _answer(self, request: Request) -> Response:
        if self.down:
            return _error(503, "UNAVAILABLE", "the service is unavailable")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "UNAUTHENTICATED", "request is missing required authentication credential")
        prefix = f"/v1/projects/{self.project}/locations/{self.location}/repositories/{self.repo}/packages/"
        if request.path.startswith(prefix):
            package, _, tag = request.path.removeprefix(prefix).partition("/tags/")
            version = self.tags.get(package, {}).get(tag)
            if version is None:
                return _error(404, "NOT_FOUND", "Requested entity was not found.")
            name = prefix.removeprefix("/v1/") + package
            return Response(
                json.dumps({"name": f"{name}/tags/{tag}", "version": f"{name}/versions/{version}"}),
                200,
                mimetype="application/json",
            )
        host = f"/{self.location}-kfp/{self.project}/{self.repo}/"
        package, _, ref = request.path.removeprefix(host).partition("/")
        version = ref if ref.startswith("sha256:") else self.tags.get(package, {}).get(ref, "")
        text = self.versions.get(package, {}).get(version)
        if not request.path.startswith(host) or text is None:
            return _error(404, "NOT_FOUND", "Requested entity was not found.")
        return Response(text, 200, mimetype="application/x-yaml")


def _error(code: int, status: str, message: str) -> Response:
    body = {"error": {"code": code, "message": message, "status": status}}
    return Response(json.dumps(body), code, mimetype="application/json")
