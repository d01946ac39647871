"""A one-step pipeline for tests: real kfp.local runs that finish in about a second.

KFP reads annotations at runtime: no `from __future__ import annotations` here.
"""

from kfp import dsl
from kfp.dsl import Metrics, Output


@dsl.component(base_image="python:3.11-slim")
def echo(message: str, fail: bool, batch_objects: list, batch_bytes: int, metrics: Output[Metrics]) -> str:
    if fail:
        raise RuntimeError("asked to fail")
    metrics.log_metric("length", len(message))
    if batch_objects:
        metrics.log_metric("batch_objects", len(batch_objects))
        metrics.log_metric("batch_bytes", batch_bytes)
    return message


@dsl.pipeline(name="echo-pipeline")
def echo_pipeline(
    message: str = "",
    fail: bool = False,
    batch_objects: list = [],  # noqa: B006 - KFP compiles the default into the spec; never mutated
    batch_bytes: int = 0,
    run_key: str = "",
) -> Metrics:
    return echo(message=message, fail=fail, batch_objects=batch_objects, batch_bytes=batch_bytes).outputs[
        "metrics"
    ]


@dsl.pipeline(name="echo")
def colliding_pipeline() -> None:
    """Named like its own component `echo`: the catalog must refuse it."""
    echo(message="x", fail=False, batch_objects=[], batch_bytes=0)


@dsl.component(base_image="python:3.11-slim")
def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@dsl.pipeline(name="sleepy-pipeline")
def sleepy_pipeline(seconds: float = 0.0, run_key: str = "") -> float:
    """Runs for `seconds`: a long run to cancel."""
    return nap(seconds=seconds).output
