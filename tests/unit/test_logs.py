"""Log hygiene: Cloud Logging's structured lines, untrusted values only as cleaned fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from functions import logs

FORGED = "a.csv\n2026-11-27 ERROR kfp_trigger forged line\r\x1b[31mred\x1b[0m \u202eevil\x00"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    logger = logging.getLogger("kfp_trigger")
    saved = list(logger.handlers)
    logger.handlers = []
    logs.configure("json", project="acme-analytics")
    yield stream
    logger.handlers = saved


def test_an_untrusted_value_stays_inside_one_json_line(captured: io.StringIO) -> None:
    with logs.request("handle_event", logs.trace_of("00-" + "ab" * 16 + "-" + "cd" * 8 + "-01", None)):
        logs.label(event_id="e-1")
        logging.getLogger("kfp_trigger.intake").warning(
            "event quarantined", extra=logs.fields(reason=FORGED, sizes=[1, FORGED])
        )
    (line,) = captured.getvalue().splitlines()
    assert not {"\x1b", "\r", "\u202e"} & set(line)
    entry = json.loads(line)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "event quarantined"
    assert entry["reason"] == (
        "a.csv\\n2026-11-27 ERROR kfp_trigger forged line\\r\\x1b[31mred\\x1b[0m \\u202eevil\\x00"
    )
    assert entry["sizes"][1] == entry["reason"]
    assert entry["logging.googleapis.com/trace"] == "projects/acme-analytics/traces/" + "ab" * 16
    assert entry["logging.googleapis.com/labels"] == {"target": "handle_event", "event_id": "e-1"}


def test_the_text_format_cleans_too(captured: io.StringIO) -> None:
    logs.configure("text")
    logging.getLogger("kfp_trigger.dev").info("delivered", extra=logs.fields(subject=FORGED))
    (line,) = captured.getvalue().splitlines()
    assert "\x1b" not in line
    assert line.endswith(
        "subject=a.csv\\n2026-11-27 ERROR kfp_trigger forged line\\r\\x1b[31mred\\x1b[0m \\u202eevil\\x00"
    )


def test_long_values_are_cut() -> None:
    cleaned = logs.clean("x" * 5000)
    assert cleaned.startswith("x" * logs.MAX_VALUE)
    assert cleaned.endswith("…(4000 more)")


@pytest.mark.parametrize(
    ("traceparent", "cloud", "trace"),
    [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None, "0af7651916cd43dd8448eb211c80319c"),
        (None, "105445aa7843bc8bf206b12000100000/1;o=1", "105445aa7843bc8bf206b12000100000"),
        ("00-nothex-b7ad6b7169203331-01", "x\ny", None),
        (None, None, None),
    ],
)
def test_trace_ids_are_read_only_in_their_shapes(
    traceparent: str | None, cloud: str | None, trace: str | None
) -> None:
    assert logs.trace_of(traceparent, cloud) == trace
