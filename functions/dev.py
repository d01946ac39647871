"""The embedded stack behind `kfp-trigger dev` and `kfp-trigger demo`, on one machine.

- both function targets, served by functions-framework apps on one port
  (`/handle_event`, `/handle_completion`);
- a watcher that turns new files in `landing/<bucket>/<object name>` into storage `finalized`
  CloudEvents, posted over HTTP like Eventarc would (generation = the file's mtime in ns);
- schedule ticks: each schedule route's cron, posted as the Pub/Sub message Cloud Scheduler
  would publish;
- a reconciling loop that completes runs whose completion notice never arrived.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import mimetypes
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from werkzeug.serving import BaseWSGIServer, make_server

from events.decoders import MESSAGE_PUBLISHED, STORAGE_FINALIZED
from events.pubsub import SCHEDULE_ATTRIBUTE
from events.routes import Rule
from functions.logs import fields

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger("kfp_trigger.dev")

MAIN = Path(__file__).resolve().parent.parent / "main.py"
TARGETS = ("handle_event", "handle_completion")
SCHEDULE_TOPIC = "projects/local/topics/kfp-trigger-schedules"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def finalized_event(bucket: str, name: str, path: Path) -> tuple[dict[str, str], dict[str, object]]:
    """A binary-mode `finalized` CloudEvent for a landed file, shaped like Eventarc's."""
    stat = path.stat()
    generation = str(stat.st_mtime_ns)
    updated = rfc3339(datetime.fromtimestamp(stat.st_mtime, UTC))
    headers = {
        "ce-id": uuid.uuid4().hex,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-type": STORAGE_FINALIZED,
        "ce-specversion": "1.0",
        "ce-subject": f"objects/{name}",
        "ce-time": updated,
        "ce-bucket": bucket,
        "content-type": "application/json",
    }
    data: dict[str, object] = {
        "kind": "storage#object",
        "bucket": bucket,
        "name": name,
        "id": f"{bucket}/{name}/{generation}",
        "generation": generation,
        "metageneration": "1",
        "size": str(stat.st_size),
        "contentType": mimetypes.guess_type(name)[0] or "application/octet-stream",
        "timeCreated": updated,
        "updated": updated,
    }
    return headers, data


def tick_event(job: str, moment: datetime) -> tuple[dict[str, str], dict[str, object]]:
    """The messagePublished CloudEvent a Cloud Scheduler job with a Pub/Sub target causes."""
    message_id = uuid.uuid4().hex
    headers = {
        "ce-id": message_id,
        "ce-source": f"//pubsub.googleapis.com/{SCHEDULE_TOPIC}",
        "ce-type": MESSAGE_PUBLISHED,
        "ce-specversion": "1.0",
        "ce-time": rfc3339(moment),
        "content-type": "application/json",
    }
    data: dict[str, object] = {
        "message": {
            "data": base64.b64encode(b"{}").decode(),
            "attributes": {SCHEDULE_ATTRIBUTE: job},
            "messageId": message_id,
            "publishTime": rfc3339(moment),
        }
    }
    return headers, data


class DevServer:
    """Both targets on one port, in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        import functions_framework

        create = functions_framework.create_app  # untyped upstream
        apps = {target: create(target, str(MAIN)) for target in TARGETS}  # type: ignore[no-untyped-call]
        self._server: BaseWSGIServer = make_server(host, port, _mount(apps), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="dev-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access line per event is noise
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()


def _mount(apps: dict[str, WSGIApplication]) -> WSGIApplication:
    """Serve each app under /<target>/, as if it were alone at / (what the function sees)."""

    def dispatch(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        _, _, path = environ.get("PATH_INFO", "").partition("/")
        target, _, rest = path.partition("/")
        app = apps.get(target)
        if app is None:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "POST to /handle_event or /handle_completion"}']
        environ = {**environ, "SCRIPT_NAME": f"/{target}", "PATH_INFO": f"/{rest}"}
        return app(environ, start_response)

    return dispatch


def post(url: str, headers: dict[str, str], data: dict[str, object]) -> int:
    response = requests.post(url, json=data, headers=headers, timeout=30)
    return response.status_code


def landing_name(landing: Path, path: Path) -> tuple[str, str] | None:
    """(bucket, object name) for a file under the landing folder; None for folders, temp files."""
    try:
        relative = path.resolve().relative_to(landing.resolve())
    except ValueError:
        return None
    parts = relative.parts
    if len(parts) < 2 or any(part.startswith(".") for part in parts) or not path.is_file():
        return None
    return parts[0], "/".join(parts[1:])


def watch_landing(landing: Path, events_url: str, stop: threading.Event) -> None:
    """Post a `finalized` event for every file added or rewritten under `landing`.

    watchfiles wakes the loop on a change (or every 2 s); each wake-up compares the folder with
    what was delivered, by modification time, so a file is delivered whether it landed before
    the watcher started watching, while it started, or after. Like Eventarc, an event answered
    non-2xx is delivered again at the next wake-up.
    """
    import watchfiles

    landing.mkdir(parents=True, exist_ok=True)
    delivered: dict[Path, int] = {}
    pending: list[tuple[dict[str, str], dict[str, object]]] = []
    for _ in watchfiles.watch(
        landing,
        stop_event=stop,
        debounce=200,
        step=50,
        rust_timeout=2000,
        yield_on_timeout=True,
        raise_interrupt=False,
    ):
        for path in sorted(landing.rglob("*")):
            names = landing_name(landing, path)
            if names is None:
                continue
            with contextlib.suppress(FileNotFoundError):  # gone again already
                modified = path.stat().st_mtime_ns
                if delivered.get(path) != modified:
                    delivered[path] = modified
                    pending.append(finalized_event(names[0], names[1], path))
        retry = []
        for headers, data in pending:
            status = post(events_url, headers, data)
            log.info("delivered", extra=fields(subject=headers["ce-subject"], status=status))
            if status >= 300:
                retry.append((headers, data))
        pending = retry


def tick_schedules(
    rules: tuple[Rule, ...],
    send: Callable[[dict[str, str], dict[str, object]], object],
    stop: threading.Event,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    interval: float = 1.0,
) -> None:
    """Send one Scheduler-shaped tick per schedule route whenever its cron comes due."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    def next_slot(rule: Rule, after: datetime) -> datetime:
        slot: datetime = croniter(rule.cron, after.astimezone(ZoneInfo(rule.timezone))).get_next(datetime)
        return slot

    schedules = [rule for rule in rules if rule.cron]
    upcoming = {rule.name: next_slot(rule, clock()) for rule in schedules}
    while schedules and not stop.wait(interval):
        now = clock()
        for rule in schedules:
            if upcoming[rule.name] <= now:
                log.info("schedule fired", extra=fields(job=rule.index))
                send(*tick_event(rule.index, now))
                upcoming[rule.name] = next_slot(rule, now)


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
