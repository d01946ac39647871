"""The completion notice as a pipeline step: wrap any compiled pipeline in `dsl.ExitHandler`.

`notified(package_text)` returns the package of a pipeline with the same inputs plus
`completion_topic` (and `run_key` if it had none). It runs the original pipeline inside an exit
handler whose exit task, `publish_completion`, publishes the completion notice
(`pipelines.notice.Notice`: `{run_key, state, job, error}`, the run key also as an attribute) to
the topic whatever the end (caching off, as an exit task must always run). The task's body runs
in the pipeline's image, where kfp-trigger is not installed, so it writes the notice's keys
itself; tests/contract/test_notify.py reads what it publishes with `Notice.decode`. The state is
the engine's word (Vertex: SUCCEEDED / FAILED / CANCELLED; KFP: COMPLETE / FAILED), read with
`RunState.parse`. Correlation travels as parameters: an exit task cannot read the outputs of the
tasks it guards.

KFP reads annotations at runtime: no `from __future__ import annotations` here.
"""

import inspect
import tempfile
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler, components, dsl

from pipelines.parameters import COMPLETION_TOPIC_PARAMETER, RUN_KEY_PARAMETER

PYTHON_TYPES = {
    "STRING": str,
    "NUMBER_INTEGER": int,
    "NUMBER_DOUBLE": float,
    "BOOLEAN": bool,
    "LIST": list,
    "STRUCT": dict,
}


# Without an image of its own, the exit step installs what it needs when it runs (python:3.11-slim
# and pip): that needs egress to PyPI, which private clusters do not have.
DEFAULT_IMAGE = "python:3.11-slim"
RUNTIME_PACKAGES = ["google-cloud-pubsub>=2.30,<3"]


def publish_completion(completion_topic: str, run_key: str, status: dsl.PipelineTaskFinalStatus) -> None:
    """Publish the run's end to `completion_topic` (pubsub://projects/P/topics/T or projects/P/topics/T)."""
    import json

    if not completion_topic:
        print("no completion_topic: the reconciler will find this run's end")
        return
    from google.cloud.pubsub_v1 import PublisherClient

    notice = {
        "run_key": run_key,
        "state": status.state,
        "job": status.pipeline_job_resource_name,
        "error": status.error_message,
    }
    topic = completion_topic.removeprefix("pubsub://")
    PublisherClient().publish(topic, json.dumps(notice).encode(), run_key=run_key).result(timeout=120)


def _parameters(declared: dict[str, Any]) -> list[inspect.Parameter]:
    parameters = [
        inspect.Parameter(
            name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=info.get("defaultValue", inspect.Parameter.empty),
            annotation=PYTHON_TYPES[info.get("parameterType", "STRING")],
        )
        for name, info in declared.items()
    ]
    for name in (RUN_KEY_PARAMETER, COMPLETION_TOPIC_PARAMETER):
        if name not in declared:
            parameters.append(
                inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default="", annotation=str)
            )
    return sorted(parameters, key=lambda p: p.default is not inspect.Parameter.empty)


def exit_step(image: str = "") -> Any:
    """The exit step as a component: from `image` (deploy/notify-image: kfp and google-cloud-pubsub
    installed from hashed requirements) nothing is installed when it runs; without one, it runs
    on python:3.11-slim and installs kfp and google-cloud-pubsub at run time."""
    if image:
        return dsl.component(publish_completion, base_image=image, install_kfp_package=False)
    return dsl.component(publish_completion, base_image=DEFAULT_IMAGE, packages_to_install=RUNTIME_PACKAGES)


def notified(package_text: str, image: str = "") -> str:
    """The package of `package_text`'s pipeline, guarded by a completion-notice exit handler
    whose step runs from `image` (see `exit_step`)."""
    spec = next(doc for doc in yaml.safe_load_all(package_text) if doc is not None)
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    inner = components.load_component_from_text(package_text)
    parameters = _parameters(declared)
    names = [parameter.name for parameter in parameters]
    step = exit_step(image)

    def pipeline(*channels: Any) -> None:  # KFP calls a pipeline with its inputs, in order
        values = dict(zip(names, channels, strict=True))
        exit_task = step(
            completion_topic=values[COMPLETION_TOPIC_PARAMETER], run_key=values[RUN_KEY_PARAMETER]
        ).set_caching_options(False)
        with dsl.ExitHandler(exit_task):
            inner(**{name: values[name] for name in declared})

    pipeline.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    pipeline.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    name = f"{spec['pipelineInfo']['name']}-notified"
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "pipeline.yaml"
        compiler.Compiler().compile(dsl.pipeline(name=name)(pipeline), str(path))
        return path.read_text()
