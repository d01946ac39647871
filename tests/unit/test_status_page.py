"""The status page rendered from the ledger (the browser test in tests/e2e/test_status_page.py
drives it in Chromium): what each page shows, and that hostile values stay inert."""

from __future__ import annotations

import re
from html import unescape as html_unescape

import pytest

from functions.service import completion, intake
from functions.service.ports import Services
from functions.statuspage import HEADERS, render
from pipelines.backend import RunState
from tests.conftest import Clock
from tests.support import call, completion_event, storage_event
from tests.support.fakes import RecordingBackend

KEY = "some-bucket-folder/some-bucket/folder/a.csv#1"
HOSTILE = 'folder/<script>alert(1)</script>"onload=x.csv'  # bidi characters in a name: quarantined
HOSTILE_ID = "e-<b>x</b>\x1b[31m\u2066\r\nforged"


def page(services: Services, path: str, **query: str) -> tuple[int, str]:
    shown = render(services, path, query)
    return shown.status, shown.html


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def story(services: Services, backend: RecordingBackend) -> Services:
    call(intake.handle, services, *storage_event("some-bucket", "folder/a.csv", event_id="e-1"))
    call(intake.handle, services, *storage_event("some-bucket", "folder/a.csv", event_id="e-1"))
    call(intake.handle, services, *storage_event("nobody-listens", "x.csv", event_id="e-2"))
    backend.states["fake-1"] = RunState.SUCCEEDED
    call(completion.handle, services, *completion_event(KEY, "SUCCEEDED"))
    return services


def test_the_overview_counts_runs_by_route_and_state(story: Services) -> None:
    status, html = page(story, "/")
    assert status == 200
    shown = text_of(html)
    assert "some-bucket-folder" in shown
    assert re.search(r"quarantined events\s*1", shown)
    assert "SUCCEEDED" in shown
    assert "<svg" in html
    assert "1 run" in html  # the activity chart's bar titles


def test_the_overview_lists_every_route_even_one_that_never_fired(story: Services) -> None:
    shown = text_of(page(story, "/")[1])
    for rule in story.router.rules:
        assert rule.name in shown, rule.name
    assert "none yet" in shown  # a route of the test routes that no event reached
    assert "schedule survey-nightly-retrain (0 3 * * *, Europe/Berlin)" in shown


def test_a_run_s_story_has_its_decisions_result_and_the_command(story: Services) -> None:
    status, html = page(story, "/story", id=KEY)
    assert status == 200
    shown = text_of(html)
    for expected in ("run", "duplicate", "completed", "SUCCEEDED", "Published result", "kfp-trigger explain"):
        assert expected in shown
    assert "&#34;accuracy&#34;: 0.9" in html or '"accuracy": 0.9' in html


def test_search_finds_an_object_by_bucket_and_name(story: Services) -> None:
    status, html = page(story, "/search", q="gs://nobody-listens/x.csv")
    assert status == 200
    assert "no route listens to storage" in text_of(html)
    assert page(story, "/search", q="nothing-like-this")[0] == 200
    assert page(story, "/story", id="nothing-like-this")[0] == 404
    assert page(story, "/no/such/page")[0] == 404


def test_hostile_object_names_are_shown_inert(services: Services) -> None:
    call(intake.handle, services, *storage_event("some-bucket", HOSTILE, event_id=HOSTILE_ID))
    for path, query in (
        ("/", {}),
        ("/routes", {}),
        ("/search", {"q": "some-bucket/folder/"}),
        ("/story", {"id": HOSTILE_ID}),
    ):
        status, html = page(services, path, **query)
        assert status == 200, path
        assert "<script>alert" not in html
        assert "<b>x</b>" not in html
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]", html), path
    html = page(services, "/story", id=HOSTILE_ID)[1]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\\x1b" in html  # shown as their escapes
    assert "\\u2066" in html


def test_each_page_s_title_is_its_name_alone(story: Services) -> None:
    """A browser keeps the title in its history and tabs: plain text, never the page's tables
    (event text in it would be shown, stored, and read by whoever shares the screen)."""
    for path, query, name in (
        ("/", {}, "Overview"),
        ("/routes", {}, "Routes"),
        ("/search", {"q": "x"}, "Search"),
        ("/story", {"id": KEY}, KEY),
    ):
        html = page(story, path, **query)[1]
        (title,) = re.findall(r"<title>(.*?)</title>", html.split("<body", 1)[0], re.S)
        assert html_unescape(title) == f"{name} · kfp-trigger", path


def test_the_page_allows_no_script() -> None:
    policy = HEADERS["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy


def test_the_target_serves_get_only_with_its_security_headers(story: Services) -> None:
    import functions_framework

    from functions import bootstrap
    from tests.support import ROOT

    bootstrap.install(story)
    try:
        client = functions_framework.create_app("status_page", str(ROOT / "main.py")).test_client()
        shown = client.get("/story", query_string={"id": KEY})
        assert shown.status_code == 200
        assert shown.mimetype == "text/html"
        assert shown.headers["Content-Security-Policy"] == HEADERS["Content-Security-Policy"]
        assert KEY in shown.get_data(as_text=True)
        refused = client.post("/", data=b"{}")
        assert (refused.status_code, refused.headers["Allow"]) == (405, "GET, HEAD")
    finally:
        bootstrap.reset()


def test_a_route_s_decisions_page_back_in_time(services: Services, clock: Clock) -> None:
    for number in range(25):
        event = storage_event("some-bucket", f"elsewhere/{number}.csv", event_id=f"s-{number}")
        call(intake.handle, services, *event)  # skipped by the route: the object does not match
        clock.now += 1

    def shown(html: str) -> list[int]:
        return [int(n) for n in re.findall(r">s-(\d+)</a>", html)]

    html = page(services, "/routes", route="some-bucket-folder")[1]
    assert shown(html) == list(range(24, 4, -1))  # the newest 20
    html = page(services, "/routes", route="some-bucket-folder", **older_link(html))[1]
    assert shown(html) == [4, 3, 2, 1, 0]
    assert "older decisions" not in html  # the last page
    for garbage in ({"before": "garbage"}, {"before": "1", "seen": "x"}, {"before": "nan", "seen": "-5"}):
        assert page(services, "/routes", route="some-bucket-folder", **garbage)[0] == 200


def older_link(html: str) -> dict[str, str]:
    """The query of a routes page's "older decisions" link."""
    older = re.search(
        r'href="/routes\?route=some-bucket-folder&amp;before=([0-9.e+-]+)&amp;seen=(\d+)"', html
    )
    assert older is not None, "no link to older decisions"
    return {"before": older[1], "seen": older[2]}


@pytest.mark.parametrize("instants", [[45], [15, 15, 15], [19, 2, 24], [1] * 45])
def test_decisions_of_one_instant_are_neither_skipped_nor_repeated_across_pages(
    services: Services, clock: Clock, instants: list[int]
) -> None:
    """Pages end among decisions recorded at one time (a burst, a coarse clock): the next page
    starts past those shown, not after the whole instant."""
    number = 0
    for count in instants:
        for _ in range(count):
            event = storage_event("some-bucket", f"elsewhere/{number}.csv", event_id=f"s-{number}")
            call(intake.handle, services, *event)
            number += 1
        clock.now += 1

    html = page(services, "/routes", route="some-bucket-folder")[1]
    pages = [[int(n) for n in re.findall(r">s-(\d+)</a>", html)]]
    while "older decisions" in html and len(pages) <= number // 20:
        html = page(services, "/routes", route="some-bucket-folder", **older_link(html))[1]
        pages.append([int(n) for n in re.findall(r">s-(\d+)</a>", html)])
    everything = [n for shown in pages for n in shown]
    assert sorted(everything) == list(range(number))  # each decision exactly once
    assert all(len(shown) == 20 for shown in pages[:-1])


def test_quarantined_events_and_their_reasons_have_a_page(story: Services) -> None:
    html = page(story, "/routes", route="")[1]
    assert "No route: quarantined and ignored events" in html
    assert "no route listens to storage" in text_of(html)
