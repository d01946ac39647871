"""bench/plan.py runs (small): the plan's counts are exact and the ledger file is untouched."""

from __future__ import annotations

import json

import pytest

from bench import plan

pytestmark = pytest.mark.slow  # the command in its own process


def test_the_plan_bench_prints_exact_counts_and_an_untouched_ledger(
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan.main(["--events", "300", "--tenants", "4", "--repeat", "1"])
    printed = capsys.readouterr().out
    assert "| daily | 180 | 90 | 0 | 90 | 0 |" in printed
    result = json.loads(printed.splitlines()[-1])
    assert (result["exact"], result["unchanged"]) == (True, True)  # the time is the bench's to say
