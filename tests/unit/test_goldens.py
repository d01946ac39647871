"""Every golden event, in every encoding, decodes and routes to its expected decision."""

from __future__ import annotations

import pytest

from events.decoders import decode
from events.envelope import parse_http
from events.errors import BadEvent
from events.model import Ignored
from events.router import Router, RunRequest, Skip
from pipelines.catalog import LoadedRoutes
from tests.support import DATA, Case, cases, encodings

CASES = cases()


def test_every_shared_sample_is_a_golden() -> None:
    listed = {case.file for case in CASES}
    on_disk = {str(path.relative_to(DATA)) for path in DATA.glob("*/*.json")}
    assert on_disk == listed


@pytest.mark.parametrize("case", CASES, ids=[case.file for case in CASES])
def test_golden_decision(case: Case, test_routes: LoadedRoutes) -> None:
    router = Router(test_routes.rules)
    for mode, headers, body, path in encodings(case):
        attributes, data = parse_http(headers, body, path)
        try:
            decoded = decode(attributes, data)
        except BadEvent as exc:
            pytest.fail(f"{mode}: {exc.reason}")
        if case.outcome == "ignored":
            assert isinstance(decoded, Ignored), mode
            assert case.reason in decoded.reason, mode
            continue
        assert not isinstance(decoded, Ignored), (mode, decoded)
        routing = router.route(decoded)
        if case.outcome == "quarantined":
            assert not routing.routed, mode
            continue
        decision = next(d for d in routing.decisions if d.route == case.route)
        if case.outcome == "run":
            assert isinstance(decision, RunRequest), (mode, decision)
            assert decision.run_key == case.run_key, mode
        else:
            assert isinstance(decision, Skip), (mode, decision)
            assert case.reason in decision.reason, (mode, decision.reason)
