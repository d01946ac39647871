"""Both function targets on one port, as `kfp-trigger dev` and `demo` serve them, with the status
page at every other path (`/`), and the small loops the dev stack runs beside them.

Each target is a functions-framework app for the main.py `deploy source` ships (written to a
private folder: an installed kfp-trigger has no checkout beside it), mounted at `/<target>` with werkzeug's
`DispatcherMiddleware`, so each sees the request as if it were alone at `/` (what the function
sees on Cloud Functions).
"""

from __future__ import annotations

import atexit
import functools
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("kfp_trigger.dev")

TARGETS = ("handle_event", "handle_completion")


LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def local_only(app: WSGIApplication, bound_host: str) -> WSGIApplication:
    """Answer local tools only: a request with an `Origin` (a browser page, any site) or a `Host`
    that is not this machine's (DNS rebinding) is refused with 403, so that a web page cannot
    post events or notices to a dev server that runs without authentication."""
    allowed = LOOPBACK | {bound_host.lower()}

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST", "").lower()
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
        if "HTTP_ORIGIN" in environ or name not in allowed:
            refused = Response(
                '{"error": "the dev server answers local tools only: no Origin, a local Host"}',
                403,
                mimetype="application/json",
            )
            return refused(environ, start_response)
        return app(environ, start_response)

    return guarded


@functools.cache
def entry_file() -> Path:
    """main.py as `deploy source` writes it (`archive.entry_point`), once per process in a folder
    of its own: the targets are served from what is deployed, wherever kfp-trigger is installed."""
    from functions.cli.archive import entry_point

    folder = tempfile.mkdtemp(prefix="kfp-trigger-dev-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    main = Path(folder) / "main.py"
    main.write_text(entry_point())
    return main


def rooted(app: WSGIApplication) -> WSGIApplication:
    """A mounted target answers at its mount point itself: `POST /handle_event` reaches it as `/`
    (as the function is reached on Cloud Functions), not a redirect to `/handle_event/` that a
    client would follow with a GET, or not at all."""

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["PATH_INFO"] = environ.get("PATH_INFO") or "/"
        return app(environ, start_response)

    return serve


class DevServer:
    """Both targets and the status page on one port, in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        import functions_framework

        create = functions_framework.create_app  # untyped upstream
        main = str(entry_file())
        mounts = {f"/{target}": rooted(create(target, main)) for target in TARGETS}  # type: ignore[no-untyped-call]
        page = create("status_page", main)  # type: ignore[no-untyped-call]
        app = DispatcherMiddleware(page, mounts)  # every other path: the status page
        self._server: BaseWSGIServer = make_server(host, port, local_only(app, host), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="dev-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access line per event is noise
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()


ANNOUNCED = "dev.json"  # in the state dir, while `dev` runs: where its targets are


def announce(state_dir: Path, url: str) -> Path:
    """Say, in the state dir, that a dev stack serves it at `url`: commands run beside it (a
    rerun, a replay) then send their runs' notices to it, and those runs end as promptly as
    the stack's own."""
    import json
    import os

    path = state_dir / ANNOUNCED
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    return path


def announced(state_dir: Path) -> str | None:
    """The URL of the dev stack that serves `state_dir`, if one runs."""
    import json
    import os

    try:
        found = json.loads((state_dir / ANNOUNCED).read_text())
        os.kill(int(found["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(found["url"])


def post(url: str, headers: dict[str, str], data: dict[str, object]) -> int:
    response = requests.post(url, json=data, headers=headers, timeout=30)
    return response.status_code


def every(seconds: float, action: Callable[[], object], stop: threading.Event) -> None:
    """Call `action` every `seconds` until `stop`; a failing call is logged, not fatal."""
    while not stop.wait(seconds):
        try:
            action()
        except Exception:
            log.exception("background task failed")


def start_background(name: str, target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
