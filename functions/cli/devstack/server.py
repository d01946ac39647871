"""Both function targets on one port, as `kfp-trigger dev` and `demo` serve them, and the small
loops the dev stack runs beside them.

Each target is a functions-framework app for main.py, mounted at `/<target>` with werkzeug's
`DispatcherMiddleware`, so each sees the request as if it were alone at `/` (what the function
sees on Cloud Functions).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Response

log = logging.getLogger("kfp_trigger.dev")

MAIN = Path(__file__).resolve().parents[3] / "main.py"
TARGETS = ("handle_event", "handle_completion")


def _not_found(environ: object, start_response: object) -> object:
    response = Response(
        '{"error": "POST to /handle_event or /handle_completion"}', 404, mimetype="application/json"
    )
    return response(environ, start_response)  # type: ignore[arg-type]


class DevServer:
    """Both targets on one port, in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        import functions_framework

        create = functions_framework.create_app  # untyped upstream
        mounts = {f"/{target}": create(target, str(MAIN)) for target in TARGETS}  # type: ignore[no-untyped-call]
        app = DispatcherMiddleware(_not_found, mounts)  # type: ignore[arg-type]
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="dev-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access line per event is noise
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()


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
