"""The status page in a real browser (issue 18): headless Chromium (Debian's `chromium`, which
`make` installs), driven by Playwright, against `kfp-trigger dev` after the demo's sequence —
two CSV parts and the `_SUCCESS` marker land, the kfp.local run ends, its result is published.

The overview shows the run SUCCEEDED, clicking it shows the event's story, searching a part's
object name finds its skip reason; no console errors, no request leaves loopback. The
overview's screenshot is docs/operations.md's (`STATUS_PAGE_SCREENSHOT=docs/status-overview.png`
writes it there)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests

from events.eventarc import object_finalized
from functions.bootstrap import ledger_from
from functions.cli.devstack.demo import BUCKET, ROUTE, land, survey_csv
from pipelines.backend import RunState
from tests.support import ROOT, env_for, free_port, kfp_trigger, server, structured
from tests.support.emulators import unavailable

pytestmark = pytest.mark.slow  # a kfp.local run, a server in a subprocess, a browser

CHROMIUM = Path("/usr/bin/chromium")
# Quiet, and nothing but the page: Chromium's own background traffic would leave loopback.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_SECONDS = 300


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: `make` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`kfp-trigger dev` after the demo's sequence, its run published: the URL, run key, part."""
    state = tmp_path_factory.mktemp("dev")
    port = free_port()
    command = kfp_trigger("dev", "--port", str(port))
    with server(
        command, env_for(state, ROOT / "deploy" / "routes.example.yaml"), port, state / "dev.log"
    ) as url:
        prefix = f"responses/tenant-a/{datetime.now(UTC):%Y-%m-%d}"
        for part, seed in (("part-0000.csv", 1), ("part-0001.csv", 2)):
            land(state / "landing", f"{prefix}/{part}", survey_csv(300, seed))
        land(state / "landing", f"{prefix}/_SUCCESS", "")
        ledger = ledger_from(f"sqlite:///{state / 'ledger.sqlite3'}")
        deadline = time.monotonic() + RUN_SECONDS
        while not (runs := [r for r in ledger.runs(route=ROUTE) if r.published_at is not None]):
            assert time.monotonic() < deadline, (state / "dev.log").read_text()[-3000:]
            time.sleep(1)
        assert runs[0].state is RunState.SUCCEEDED, runs[0]
        yield {"url": url, "run_key": runs[0].run_key, "part": f"{BUCKET}/{prefix}/part-0000.csv"}


def test_the_status_page_in_a_browser(browser: Any, demo: dict[str, str], tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requested: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requested.append(request.url))

    page.goto(demo["url"] + "/")
    assert page.locator("h1").inner_text() == "Overview"
    assert page.locator("span.state.SUCCEEDED").first.inner_text() == "1"
    assert page.locator("svg[role=img] rect").count() > 60  # a bar per minute, with its parts
    shot = ROOT / os.environ.get("STATUS_PAGE_SCREENSHOT", tmp_path / "overview.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    page.locator("a", has_text=demo["run_key"]).first.click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/story")
    story = page.locator("main").inner_text()
    assert "Story of" in story
    for expected in ("completed", "run ended SUCCEEDED", "Published result", "kfp-trigger explain"):
        assert expected in story, expected
    assert page.locator("section.run .state").inner_text() == "SUCCEEDED"

    page.fill("input[name=q]", demo["part"])
    page.press("input[name=q]", "Enter")
    page.wait_for_url(lambda url: urlsplit(url).path == "/search")
    found = page.locator("main").inner_text()
    assert "skipped" in found, found
    assert "does not match 'responses/{tenant}/{date}/_SUCCESS'" in found, found

    assert errors == []
    assert {urlsplit(url).hostname for url in requested} == {"127.0.0.1"}
    page.close()


HOSTILE_NAME = 'responses/<script>alert(1)</script>"><img src=x onerror=alert(2)>.csv'
HOSTILE_ID = "e-<b>bold</b>\u202egpj.exe\u2066\x07\x1b[31m"


def test_hostile_values_posted_to_the_server_show_inert(browser: Any, demo: dict[str, str]) -> None:
    """An object name with markup (Cloud Storage allows it) and an event id with bidi overrides,
    a bell and an ANSI escape, posted as a structured CloudEvent, then viewed in Chromium: the
    text is shown as text, the invisible characters as their escapes, and nothing runs."""
    delivery, data = object_finalized(BUCKET, HOSTILE_NAME, generation=7, size=3, event_id=HOSTILE_ID)
    attributes = {
        name.removeprefix("ce-"): value for name, value in delivery.items() if name.startswith("ce-")
    }
    headers, body = structured(attributes, data)
    answer = requests.post(f"{demo['url']}/handle_event", data=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for path in ("/", f"/search?q={quote(BUCKET + '/responses/<script>')}", f"/story?id={quote(HOSTILE_ID)}"):
        page.goto(demo["url"] + path)
        assert "<script>alert(1)</script>" in page.locator("main").inner_text(), path  # as text
        assert page.locator("main script, main img").count() == 0, path
        html = page.content()
        for invisible in ("\u202e", "\u2066", "\x07", "\x1b"):
            assert invisible not in html, (path, invisible)
        assert HOSTILE_NAME not in page.title(), path  # a tab and the history keep the title
    page.goto(demo["url"] + "/")
    assert page.title() == "Overview · kfp-trigger"
    page.goto(demo["url"] + f"/story?id={quote(HOSTILE_ID)}")
    story = page.locator("main").inner_text()
    assert "\\u202e" in story  # shown as its escape
    assert "\\x1b" in story
    assert dialogs == []
    page.close()
