"""A short run of the fuzzer (bench/fuzz.py, hypothesis engine): 1,000 generated requests through
parse_http → decode → route, and only the project's own validation errors escape. The full run
is `make fuzz`."""

from __future__ import annotations

import pytest

from bench.fuzz import with_hypothesis

pytestmark = pytest.mark.slow  # a thousand fuzzed requests (about 10 s)


def test_a_thousand_fuzzed_requests_raise_only_validation_errors() -> None:
    outcome = with_hypothesis(seconds=0, rounds=5)
    assert outcome.inputs == 1000
    assert outcome.crashes == [], outcome.crashes[0]
