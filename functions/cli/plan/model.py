"""The deploy plan's model: resources, each with its Terraform type, name and arguments and the
gcloud command that creates it, so the two renderers (functions/cli/plan/render.py) cannot
disagree."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from events.decoders import MESSAGE_PUBLISHED

PREFIX = "kfp-trigger"
RUNTIME = "python311"
# What never ships in the function's source: local state, tests and benchmarks, the laptop and
# operator tools (functions/cli: the CLI, the dev stack, this deploy plan) and deploy/ itself
# (Terraform state and the source archive). `.gcloudignore` lists the same for `gcloud`; a test
# keeps the two equal and imports the shipped tree without them.
NOT_SHIPPED = (
    ".venv",
    ".git",
    ".ci",
    ".kfp-trigger",
    "landing",
    "tests",
    "bench",
    "docs",
    "deploy",
    "functions/cli",
)
PRIMITIVE_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
RECONCILE_SCHEDULE = "*/5 * * * *"
MAX_DELIVERY_ATTEMPTS = 10
PUBLISHED = {"type": MESSAGE_PUBLISHED}
JOB_NAME = re.compile(r"[A-Za-z0-9_-]{1,500}")


class PlanError(ValueError):
    """routes.yaml names something Google Cloud cannot create; the message says what."""


# function → entry point, max instances, memory, timeout in seconds
# function → the one identity that may call it (run.invoker on that function alone): Eventarc's
# triggers on events, Eventarc's trigger on the completions topic, Cloud Scheduler's reconciler.
CALLERS = {"events": "event-invoker", "completions": "notice-invoker", "reconcile": "scheduler"}
FUNCTIONS = {
    "events": ("handle_event", 20, "512Mi", 60),
    "completions": ("handle_completion", 10, "512Mi", 120),
    "reconcile": ("reconcile", 1, "512Mi", 540),
}


@dataclass(frozen=True)
class Expr:
    """A Terraform expression (a reference or a call), written unquoted."""

    text: str


@dataclass(frozen=True)
class Block:
    """A nested Terraform block, as opposed to a map-valued argument."""

    body: Mapping[str, Any]


@dataclass(frozen=True)
class Gcloud:
    """One gcloud command: its command path (`pubsub topics create`) and its arguments."""

    path: tuple[str, ...]
    args: tuple[str, ...]

    @property
    def words(self) -> list[str]:
        return ["gcloud", *self.path, *self.args]


@dataclass
class Resource:
    kind: str  # Terraform type, e.g. google_pubsub_topic
    name: str  # Terraform name
    args: dict[str, Any]
    gcloud: Gcloud | None = None  # the command that creates (or updates) it
    exists: Gcloud | None = None  # a command that succeeds when it exists already
    data: bool = False  # a Terraform data source

    @property
    def address(self) -> str:
        return f"{'data.' if self.data else ''}{self.kind}.{self.name}"

    def ref(self, attribute: str) -> Expr:
        return Expr(f"{self.address}.{attribute}")


@dataclass
class Plan:
    project: str
    region: str
    resources: list[Resource] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)  # name → description

    def of_kind(self, kind: str) -> list[Resource]:
        return [resource for resource in self.resources if resource.kind == kind]

    def roles(self) -> list[str]:
        return [str(resource.args["role"]) for resource in self.resources if "role" in resource.args]


def slug(text: str) -> str:
    """A Terraform name for any text: lower-case letters, digits, underscores."""
    cleaned = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return cleaned if cleaned[:1].isalpha() else f"x_{cleaned}"


def resource_id(text: str, limit: int = 63) -> str:
    """A Google resource id for any text: lower-case letters, digits, dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].rstrip("-")
