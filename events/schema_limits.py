"""routes.yaml's limits and expectations: what a route may spend (`limits:`), what the whole file
may (`limits:` at the top), and what must arrive or succeed on time (`expect:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from events.schema_types import Duration, Model

HH_MM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Rate(Model):
    runs: int = Field(ge=1, description="at most this many run starts")
    per: Duration = Field(description="per window of this length (windows are aligned to the epoch)")


class Concurrency(Model):
    """At most `max_active` runs at once per key (e.g. one per tenant), across the route."""

    key: str = Field(
        description="template of the key, e.g. {tenant}: runs whose key renders the same share the limit"
    )
    max_active: int = Field(1, ge=1, description="runs of one key at once")
    on_newer: Literal["queue", "skip", "supersede"] = Field(
        "queue",
        description="a newer run while the key is full: queue (it starts when a place frees), skip "
        "(it ends SKIPPED with the reason, and its result says so) or supersede (the key's older runs "
        "are cancelled on their engine and end CANCELED with superseded_by; it starts once they have "
        "ended; a queued older run ends without starting)",
    )


class Settle(Model):
    """A settle window: the items of one run key become one run once they stop arriving."""

    quiet: Duration = Field(description="start the batch once no item has joined it for this long (2m)")
    max_wait: Duration = Field(
        3600.0, description="start it at the latest this long after its first item, however busy (30m)"
    )
    max_items: int = Field(1000, ge=1, le=100_000, description="start it as soon as it holds this many items")

    @model_validator(mode="after")
    def _quiet_within_max_wait(self) -> Settle:
        if self.quiet > self.max_wait:
            raise ValueError(f"quiet ({self.quiet:g} s) is longer than max_wait ({self.max_wait:g} s)")
        return self


class RouteLimits(Model):
    """What one route may spend. Runs held back by a limit wait in the ledger's queue."""

    max_active: int | None = Field(
        None, ge=1, description="at most this many runs of the route at once; more wait in the queue"
    )
    rate: Rate | None = Field(None, description="at most `runs` starts per `per`; more wait in the queue")
    coalesce: Duration | None = Field(
        None,
        description="storage routes: finalize events with the same run key inside one window of this "
        "length become one run, started when the window closes, with every object in batch_objects",
    )
    settle: Settle | None = Field(
        None,
        description="storage and Pub/Sub routes: the objects or messages with the same run key become "
        "one run once none has arrived for `quiet` (or at `max_wait`, or at `max_items`), with every "
        "one in batch_objects",
    )
    max_age: Duration | None = Field(
        None, description="skip (and record) events older than this, by their CloudEvent time"
    )
    concurrency: Concurrency | None = Field(
        None, description="per-key limit: one run at a time per tenant, …"
    )


class GlobalLimits(Model):
    daily_submissions: int | None = Field(
        None, ge=1, description="at most this many runs started per UTC day, all routes together; more wait"
    )


class Expect(Model):
    """What the route expects in every window of `every` (e.g. every day, ending 06:00 Berlin
    time): at least one matching event by `by`, or, per key, a run that succeeded by
    `succeeded_by`. The first reconcile pass after a window ends without it records why and
    sends an alert, once per window (and key). Windows that ended before the route was first
    seen are not judged."""

    every: Duration = Field(
        86400.0, description="the window: 1d, 12h, 1h, … (a whole number of windows per day)"
    )
    by: str | None = Field(
        None, pattern=HH_MM, description="data: when a window ends, HH:MM; an event must have arrived"
    )
    succeeded_by: str | None = Field(
        None, pattern=HH_MM, description="outcomes: when a window ends, HH:MM; a run must have succeeded"
    )
    per: str | None = Field(
        None,
        description="with succeeded_by: a template of the run's fields, e.g. {tenant}: each key the route "
        "has run for in the last 7 windows needs its own succeeded run",
    )
    timezone: str = Field("UTC", description="the time zone `by` and `succeeded_by` are read in (IANA name)")

    @model_validator(mode="after")
    def _one_deadline(self) -> Expect:
        if (self.by is None) == (self.succeeded_by is None):
            raise ValueError("give one of `by` (an event arrived) or `succeeded_by` (a run succeeded)")
        if self.per is not None and self.succeeded_by is None:
            raise ValueError("`per` goes with `succeeded_by`: arrivals are judged per route")
        return self

    @property
    def deadline(self) -> str:
        """When a window ends, HH:MM."""
        return self.by or self.succeeded_by or "00:00"
