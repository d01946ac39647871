"""bench/costs.py at a small size, so the benchmark cannot rot: each kind of delivery counted as
Google bills it, and priced. Nothing here is timed; the figures are `make bench`'s."""

from __future__ import annotations

import pytest

from bench import costs

pytestmark = [pytest.mark.slow, pytest.mark.emulator]


def test_each_kind_is_counted_as_billed_and_priced() -> None:
    found = costs.measure(3)
    assert set(found) == set(costs.KINDS)
    new, duplicate, skip, completion = (found[kind] for kind in costs.KINDS)
    assert new["written"] > duplicate["written"] > 0, "a new run writes its run, its event and a decision"
    assert skip["read"] == 0, "a skip decides without reading the ledger"
    assert completion["published"] == 1, "one result per run"
    assert new["published"] == 0
    priced = costs.per_million(new)
    assert priced["function"] >= 1e6 * costs.PRICES["request"]
    assert all(value > 0 for value in priced.values())
