"""Route tests: the user's cases — an event and what each route must decide — run through the
service's own decode and route code (`kfp-trigger routes test`).

A case file is YAML, a list of cases:

    - name: a day's responses are complete
      event: events/survey-success.json      # a structured-mode CloudEvent (relative to this
                                             # file), or the CloudEvent itself as a mapping
      routes:                                # each listed route's decision:
        survey-responses-landed:
          run:                               #   it runs; what is given is compared
            run_key: survey-responses-landed/acme-survey-landing/…#1795700000000001
            params: {tenant: tenant-a}       #   only these parameters are compared
        nightly-retrain: {skip: ""}          #   it skips; the reason contains this text
    - name: a deleted object is ignored
      event: events/object-deleted.json
      ignore: object deleted                 # the event is ignored, the reason contains this
    - name: an unknown bucket is quarantined
      event: events/unrouted-bucket.json
      quarantine: no route listens           # the event is quarantined, the reason contains this

A route not listed may skip, but not run: an unexpected run fails the case. A join's part is
`{part: {name: …, key: …}}`. What a case compares is shown beside what happened, as a diff of
the two in the case's own shape. Routing is what is tested: the ledger's answers (duplicates,
limits, the pause) and the producer's signature are `simulate`'s.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from events.locate import locate, tree
from events.pubsub import SCHEDULES_TOPIC
from events.router import Router, RunRequest, Skip
from events.validation import closest, error_path, said


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_Given = TypeVar("_Given", bound=BaseModel)


def _exactly_one(model: _Given, *names: str) -> _Given:
    if sum(getattr(model, name) is not None for name in names) != 1:
        raise ValueError(f"give exactly one of {', '.join(names)}")
    return model


class ExpectRun(_Model):
    run_key: str | None = Field(None, description="the run key, exactly")
    params: dict[str, Any] | None = Field(None, description="these parameters, each exactly")


class ExpectPart(_Model):
    name: str
    key: str | None = None


class ExpectRoute(_Model):
    run: ExpectRun | None = None
    skip: str | None = Field(None, description="the skip reason contains this ('' for any)")
    part: ExpectPart | None = None

    @model_validator(mode="after")
    def _one(self) -> ExpectRoute:
        return _exactly_one(self, "run", "skip", "part")


class Case(_Model):
    name: str
    event: str | dict[str, Any]
    routes: dict[str, ExpectRoute] | None = None
    ignore: str | None = None
    quarantine: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Case:
        return _exactly_one(self, "routes", "ignore", "quarantine")


class CaseFileError(ValueError):
    """A case file that cannot be read: its problems, each with its place."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: str
    file: str
    expected: Any  # the case's expectation, as plain data
    seen: Any  # what happened, in the expectation's shape
    reason: str = ""  # why the case could not run at all (its event does not read)

    @property
    def passed(self) -> bool:
        return not self.reason and same(self.seen, self.expected)

    def diff(self) -> str:
        """The expectation against what happened, as a unified diff of their YAML."""
        if self.reason:
            return self.reason
        lines = difflib.unified_diff(
            _yaml(self.expected).splitlines(),
            _yaml(self.seen).splitlines(),
            "expected",
            "actual",
            lineterm="",
        )
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "file": self.file,
            "passed": self.passed,
            "expected": self.expected,
            "actual": self.seen,
            "diff": "" if self.passed else self.diff(),
        }


def case_files(where: Path) -> list[Path]:
    """The YAML case files at `where`: the file itself, or every *.yaml/*.yml under the folder."""
    if where.is_file():
        return [where]
    return sorted(path for pattern in ("*.yaml", "*.yml") for path in where.rglob(pattern))


def read_cases(path: Path) -> list[Case]:
    """The cases of one file.

    Raises:
        CaseFileError: not YAML, not a list, or a case that does not fit the format.
    """
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CaseFileError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(document, list):
        raise CaseFileError(f"{path}: expected a list of cases")
    cases, problems, root = [], [], tree(text)
    for position, raw in enumerate(document):
        try:
            cases.append(Case.model_validate(raw))
        except ValidationError as exc:
            for error in exc.errors():
                problem = f"[{position}]{error_path(error['loc'])}: {said(error)}"
                problems.append(locate(root, problem).text(str(path)))
    if problems:
        raise CaseFileError("\n".join(problems))
    return cases


def run_case(
    case: Case, router: Router, folder: Path, file: str, schedules_topic: str = SCHEDULES_TOPIC
) -> CaseResult:
    """One case through decode and route, as the service decodes and routes its event."""
    from events.decoders import decode
    from events.envelope import EnvelopeError, parse_http
    from events.errors import BadEvent
    from events.model import Ignored

    expected = case.model_dump(exclude_none=True, exclude={"name", "event"})
    try:
        body = case.event if isinstance(case.event, dict) else json.loads((folder / case.event).read_bytes())
    except (OSError, ValueError) as exc:
        return CaseResult(case.name, file, expected, None, f"the event {case.event!r} does not read: {exc}")
    try:
        attributes, data = parse_http(
            {"content-type": "application/cloudevents+json"}, json.dumps(body).encode()
        )
        decoded = decode(attributes, data, schedules_topic)
    except (EnvelopeError, BadEvent) as exc:
        return CaseResult(case.name, file, expected, _said("quarantine", case.quarantine, _reason(exc)))
    if isinstance(decoded, Ignored):
        return CaseResult(case.name, file, expected, _said("ignore", case.ignore, decoded.reason))
    routing = router.route(decoded)
    if not routing.routed:
        reason = f"no route listens to {decoded.kind} {decoded.index!r}"
        return CaseResult(case.name, file, expected, _said("quarantine", case.quarantine, reason))
    decisions = {decision.route: decision for decision in routing.decisions}
    wanted = case.routes or {}
    seen: dict[str, Any] = {}
    for name, expectation in wanted.items():
        if name not in router.by_name:
            seen[name] = f"(routes.yaml has no route {name!r}{closest(name, router.by_name)})"
            continue
        seen[name] = _seen(expectation, decisions.get(name))
    for name, decision in decisions.items():  # a route not listed may skip, but not run
        if name not in wanted and isinstance(decision, RunRequest):
            seen[name] = _seen(None, decision)
    return CaseResult(case.name, file, expected, {"routes": seen})


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc)


def _said(kind: Literal["ignore", "quarantine"], wanted: str | None, reason: str) -> dict[str, str]:
    """What happened to the whole event, in the case's shape: the expected text when the reason
    contains it, else the whole reason."""
    return {kind: wanted if wanted is not None and wanted in reason else reason}


def _seen(expectation: ExpectRoute | None, decision: RunRequest | Skip | None) -> Any:
    """One route's decision in the shape of its expectation: what the case compares, and all of
    a decision of another kind than expected."""
    if decision is None:
        return "(no decision: the route does not listen where this event comes from)"
    if isinstance(decision, Skip):
        wanted = expectation.skip if expectation is not None else None
        return {"skip": wanted if wanted is not None and wanted in decision.reason else decision.reason}
    if decision.part is not None:
        part: dict[str, Any] = {"name": decision.part.name, "key": decision.part.key}
        if expectation is not None and expectation.part is not None and expectation.part.key is None:
            del part["key"]
        return {"part": part}
    run: dict[str, Any] = {"run_key": decision.run_key, "params": dict(decision.params)}
    if expectation is not None and expectation.run is not None:
        wanted_run = expectation.run
        run = {"run_key": decision.run_key} if wanted_run.run_key is not None else {}
        if wanted_run.params is not None:
            run["params"] = {name: decision.params.get(name, "(absent)") for name in wanted_run.params}
    return {"run": run}


def run_all(where: Path, router: Router, schedules_topic: str = SCHEDULES_TOPIC) -> Iterator[CaseResult]:
    """Every case under `where`, in file order (ticks come on `schedules_topic`).

    Raises:
        CaseFileError: a case file that cannot be read (before any case of it runs).
    """
    read, problems = [], []
    for path in case_files(where):  # every file's problems at once, before any case runs
        try:
            read.append((path, read_cases(path)))
        except CaseFileError as exc:
            problems.append(str(exc))
    if problems:
        raise CaseFileError("\n".join(problems))
    for path, cases in read:
        for case in cases:
            yield run_case(case, router, path.parent, str(path), schedules_topic)


def same(left: object, right: object) -> bool:
    """JSON equality: true is not 1, 1 is 1.0; mappings and lists compared member by member."""
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(same(left[key], right[key]) for key in left)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    return isinstance(left, bool) == isinstance(right, bool) and left == right


def _yaml(value: Mapping[str, Any] | Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=1000)
