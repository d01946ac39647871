"""The embedded stack's event sources: schedule ticks and landed files, shaped like GCP's."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events.decoders import decode
from events.envelope import parse_http
from events.router import Router, RunRequest
from functions.cli.devstack.ticks import tick_schedules
from functions.cli.devstack.watcher import finalized_event, landing_name, routed_buckets, watch_landing
from functions.service.ports import Services
from pipelines.catalog import LoadedRoutes
from tests.support import binary, serving


def test_schedule_ticks_fire_on_the_cron_and_route_to_their_slot(test_routes: LoadedRoutes) -> None:
    start = datetime(2026, 11, 26, 1, 59, 58, tzinfo=UTC)  # the route fires at 03:00 Berlin = 02:00Z
    moments = iter(start + timedelta(seconds=second) for second in range(10_000))
    stop = threading.Event()
    sent: list[tuple[dict[str, str], dict[str, object]]] = []

    def send(headers: dict[str, str], data: dict[str, object]) -> None:
        sent.append((headers, data))
        stop.set()

    tick_schedules(test_routes.rules, send, stop, clock=lambda: next(moments), interval=0.0001)
    ((headers, data),) = sent
    attributes, parsed = parse_http(*binary({k.removeprefix("ce-"): v for k, v in headers.items()}, data))
    (decision,) = Router(test_routes.rules).route(decode(attributes, parsed)).decisions
    assert isinstance(decision, RunRequest)
    assert decision.run_key == "nightly-retrain/survey-nightly-retrain@2026-11-26T02:00:00Z"


def test_landed_files_become_finalized_events(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    target = landing / "my-bucket" / "a" / "b.csv"
    target.parent.mkdir(parents=True)
    target.write_text("x,y\n")
    assert landing_name(landing, target) == ("my-bucket", "a/b.csv")
    assert landing_name(landing, landing / "my-bucket" / ".partial") is None
    assert landing_name(landing, tmp_path / "elsewhere.csv") is None
    headers, data = finalized_event("my-bucket", "a/b.csv", target)
    event = decode({k.removeprefix("ce-"): v for k, v in headers.items() if k.startswith("ce-")}, data)
    assert event.key == f"my-bucket/a/b.csv#{target.stat().st_mtime_ns}"


def test_only_files_in_routed_buckets_become_events(tmp_path: Path, test_routes: LoadedRoutes) -> None:
    """As deployed, where a bucket without a route has no Eventarc trigger: a run's artifacts
    written to its pipeline root's bucket in the landing folder start nothing."""
    buckets = routed_buckets(test_routes.rules)
    assert {"some-bucket", "acme-survey-landing"} <= buckets
    assert "acme-ml-artifacts" not in buckets
    posted: list[str] = []
    done = threading.Event()

    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        posted.append(str(environ["HTTP_CE_SOURCE"]).rsplit("/", 1)[-1])
        done.set()
        start_response("200 OK", [("Content-Type", "application/json")])  # type: ignore[operator]
        return [b"{}"]

    landing = tmp_path / "landing"
    for bucket in ("acme-ml-artifacts", "some-bucket"):  # the unrouted one first, in name order
        (landing / bucket / "folder").mkdir(parents=True)
        (landing / bucket / "folder" / "f.csv").write_text("x\n")
    stop = threading.Event()
    with serving(app) as url:
        watcher = threading.Thread(target=watch_landing, args=(landing, url, stop, buckets), daemon=True)
        watcher.start()
        assert done.wait(30), "the routed bucket's file was not delivered"
        stop.set()
        watcher.join(timeout=10)
    assert posted == ["some-bucket"], "one event, from the routed bucket"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"Host": "localhost:8080"}, 200),
        ({"Host": "[::1]:8080"}, 200),
        ({"Origin": "https://evil.example"}, 403),  # a web page, whatever its site
        ({"Origin": "null"}, 403),
        ({"Host": "evil.example:8080"}, 403),  # DNS rebinding: a foreign name for this machine
    ],
)
def test_the_dev_server_answers_local_tools_only(headers: dict[str, str], status: int) -> None:
    from werkzeug.test import Client
    from werkzeug.wrappers import Response

    from functions.cli.devstack.server import local_only

    app = local_only(Response("ok"), "127.0.0.1")
    base_url = f"http://{headers.pop('Host', '127.0.0.1:8080')}/"
    answer = Client(app).post("/handle_event", headers=headers, base_url=base_url)
    assert answer.status_code == status


@pytest.mark.parametrize(
    "path", ["/handle_event", "/handle_event/", "/handle_completion", "/handle_completion/"]
)
def test_each_target_answers_at_its_path_with_or_without_the_slash(path: str, services: Services) -> None:
    """A POST to /handle_event is the target's, not a 308 to /handle_event/ (which clients
    follow as a GET, or not at all)."""
    from werkzeug.test import Client

    from functions import bootstrap
    from functions.cli.devstack.server import DevServer

    bootstrap.install(services)
    server = DevServer(port=0)
    try:
        answer = Client(server._server.app).post(
            path, data=b"not a cloudevent", headers={"content-type": "text/plain"}
        )
    finally:
        server._server.server_close()
    assert answer.status_code == 415, (answer.status_code, answer.get_data(as_text=True))
