"""Recording fakes for the ports. They record what they were given; tests assert on that."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipelines.backend import RunState, RunStatus, Submission


@dataclass
class RecordingBackend:
    """A backend that starts nothing: `submitted` lists every submission it accepted.

    `fail_with` is raised by the next submit (then cleared); `succeed_but_raise` records the
    submission and *then* raises, as when a response is lost after the run was created.
    """

    submitted: list[Submission] = field(default_factory=list)
    states: dict[str, RunState] = field(default_factory=dict)
    fail_with: Exception | None = None
    succeed_but_raise: Exception | None = None
    metrics: dict[str, float] = field(default_factory=lambda: {"accuracy": 0.9})
    outputs: dict[str, str] = field(default_factory=dict)

    def submit(self, submission: Submission) -> str:
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        self.submitted.append(submission)
        run_id = f"fake-{len(self.submitted)}"
        self.states[run_id] = RunState.RUNNING
        if self.succeed_but_raise is not None:
            error, self.succeed_but_raise = self.succeed_but_raise, None
            raise error
        return run_id

    def status(self, run_id: str) -> RunStatus:
        state = self.states[run_id]
        metrics = self.metrics if state is RunState.SUCCEEDED else {}
        outputs = self.outputs or {"model": f"mem://{run_id}/model"}
        return RunStatus(run_id, state, metrics=metrics, outputs=outputs)

    def find(self, run_key: str) -> str | None:
        for number, submission in enumerate(self.submitted, start=1):
            if submission.run_key == run_key:
                return f"fake-{number}"
        return None

    def cancel(self, run_id: str) -> None:
        self.states[run_id] = RunState.CANCELED


@dataclass
class RecordingSink:
    published: list[Mapping[str, object]] = field(default_factory=list)

    def publish(self, document: Mapping[str, object]) -> None:
        self.published.append(document)
