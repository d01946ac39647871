"""Attacks on the trust boundaries (issue 13), row by row, through the real server: forged or
re-published signatures, schedule ticks on the wrong topic, hostile numbers, hostile values in
templates, colliding run keys, cross-site posts. Each answer is a refusal with its reason, never
a run the attacker wanted and never a 500. (A forged completion notice: test_cluster_flow.py.)"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support import structured
from tests.support.catalogue import STORAGE, Row, catalogue_server, check, message, raw, resigned, storage

pytestmark = pytest.mark.slow  # a server in a subprocess

ATTACKS: dict[str, Row] = {
    **{
        f"a cross-site {kind} body holding a structured CloudEvent": Row(
            [raw({"content-type": kind}, structured({**STORAGE, "id": "xs-1"}, {"name": "x"})[1])], 415
        )
        for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
    },
    "a signature timestamp of non-ASCII digits (²)": Row(
        [
            message(
                "n-1", {"event_id": "p-n1"}, signed=None, timestamp="²", signature="v1=00", schema_version="1"
            )
        ],
        reason="signature: the timestamp attribute is not whole Unix seconds",
    ),
    "a non-ASCII signature": Row(
        [
            message(
                "n-2",
                {"event_id": "p-n2"},
                signed=None,
                timestamp=str(int(time.time())),
                signature="v1=ünïcode",
                schema_version="1",
            )
        ],
        reason="signature: the signature does not match",
    ),
    **{
        f"a storage generation of {generation!r}": Row(
            [storage(f"g-{n}", "hostile-generation.csv", generation=generation)],
            reason="data.generation must be an integer",
        )
        for n, generation in enumerate(["--7", "²", "1_000", " 7", "+7", "99999999999999999999"])
    },
    "a signed product message without event_id (it could be replayed in the window)": Row(
        [message("n-1", {"survey_id": "s"}, schema_version="1")],
        reason="signature: a signed message must carry an event_id",
    ),
    "a signed message re-published with another attribute": Row(
        [resigned(message("a-1", {"event_id": "p-a", "survey_id": "s"}, schema_version="1"), env="prod")],
        reason="signature: the signature does not match",
    ),
    "a scheduler_job attribute on the product topic is no schedule tick": Row(
        [message("st-1", {"event_id": "p-st"}, signed=None, schema_version="1", scheduler_job="nightly")],
        reason="signature: unsigned",
    ),
    "a tenant that climbs out of its folder, into a parameter": Row(
        [
            message(
                "tv-1",
                {"event_id": "p-tv1", "tenant": "../../other-tenant/x", "survey": "s"},
                schema_version="2",
            )
        ],
        outcome="skipped",
        reason="the value of {data.tenant} has a backslash, a leading '/', or an empty, '.' or '..' folder",
    ),
    "a tenant with NUL, a newline and a right-to-left override": Row(
        [
            message(
                "tv-2",
                {"event_id": "p-tv2", "tenant": "x\u0000\n\u202egpj.exe", "survey": "s"},
                schema_version="2",
            )
        ],
        outcome="skipped",
        reason="the value of {data.tenant} contains control characters",
    ),
    "a JSON object where the template wants text": Row(
        [
            message(
                "tv-3", {"event_id": "p-tv3", "tenant": {"nested": ["x"]}, "survey": "s"}, schema_version="2"
            )
        ],
        outcome="skipped",
        reason="{data.tenant} is a JSON object or list, not text",
    ),
    "a proper tenant runs": Row(
        [message("tv-4", {"event_id": "p-tv4", "tenant": "acme-eu", "survey": "s"}, schema_version="2")],
        outcome="run",
    ),
    "two events whose values would render one run key": Row(
        [
            message("k-1", {"event_id": "p-k1", "tenant": "acme/eu", "survey": "s1"}, schema_version="2"),
            message("k-2", {"event_id": "p-k2", "tenant": "acme", "survey": "eu/s1"}, schema_version="2"),
        ],
        outcome="run",
    ),
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with catalogue_server(tmp_path_factory.mktemp("catalogue")) as base:
        yield base


@pytest.mark.parametrize("row", list(ATTACKS))
def test_row(url: str, row: str) -> None:
    check(url, ATTACKS[row])
