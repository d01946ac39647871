"""The backend contract (tests/support/engine_contract.py) on the user's own engines: what
`make test` checks on the fakes, checked where the runs really happen."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipelines.backend import Backend, CompiledPipeline
from tests.support import engine_contract


@pytest.mark.parametrize("check", engine_contract.CHECKS, ids=lambda check: check.__name__)
def test_the_engine_keeps_the_contract(
    engine: tuple[str, Backend], echo: CompiledPipeline, check: Callable[[Backend, CompiledPipeline], None]
) -> None:
    check(engine[1], echo)
