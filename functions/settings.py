"""Configuration: one frozen `Settings`, each field one `KFP_TRIGGER_*` variable (pydantic-settings).

The field list below is the only list of variables: `bootstrap` reads them from the environment
(`Settings.from_environment()`, the one place that does), the CLI mirrors some as options, and
`to_environment()` renders them for the deploy plan. Constructing `Settings(...)` directly reads
nothing. Adapters are chosen by URL (`sqlite:///…` or `firestore://PROJECT/COLLECTION` for the
ledger; `jsonl:///…` or `pubsub://projects/P/topics/T` for the sinks). A missing or malformed
value fails at start-up naming its variable.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, field_serializer
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from events.errors import PermanentError
from events.pubsub import SCHEDULES_TOPIC

PREFIX = "KFP_TRIGGER_"

# scheme → the shape of the whole URL, for each kind of adapter URL
LEDGER_URLS = {
    "sqlite": r"sqlite:///.+",
    # a named database: ?database=NAME (cloud.google.com/firestore/docs/manage-databases: 4-63
    # lower-case letters, digits and dashes); none: "(default)"
    "firestore": r"firestore://[a-z][a-z0-9-]{4,29}/[A-Za-z0-9_-]+(\?database=[a-z][a-z0-9-]{2,61}[a-z0-9])?",
}
SINK_URLS = {"jsonl": r"jsonl:///.+", "pubsub": r"pubsub://projects/[^/]+/topics/[^/]+"}
TOPIC_URLS = {"pubsub": SINK_URLS["pubsub"]}


class SettingsError(PermanentError):
    """A configuration variable is missing or malformed."""


def _emails(value: object) -> object:
    """AUTH_EMAILS is comma-separated in the environment."""
    if isinstance(value, str):
        return tuple(email.strip() for email in value.split(",") if email.strip())
    return value


URL_FORMS = {
    "sqlite": "sqlite:///path/to/ledger.sqlite3",
    "firestore": "firestore://PROJECT/COLLECTION?database=NAME",
    "jsonl": "jsonl:///path/to/file.jsonl",
    "pubsub": "pubsub://projects/PROJECT/topics/TOPIC",
}


def _url(shapes: dict[str, str]) -> AfterValidator:
    """Accept "" (the default) or a URL of one of `shapes`."""

    def check(value: str) -> str:
        if value and not any(re.fullmatch(shape, value) for shape in shapes.values()):
            raise ValueError(f"expected {' or '.join(URL_FORMS[scheme] for scheme in shapes)}")
        return value

    return AfterValidator(check)


def _by_digest(image: str) -> str:
    """An image named by its digest, so what runs is what was built and reviewed."""
    if image and not re.fullmatch(r"[^\s@]+@sha256:[0-9a-f]{64}", image):
        raise ValueError(
            "must name the image by digest, IMAGE@sha256:<64 hex digits> "
            "(after docker push: docker inspect --format '{{index .RepoDigests 0}}' IMAGE)"
        )
    return image


def _blank_is_unset(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


Positive = Annotated[float, Field(gt=0)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_is_unset)]


DEFAULT_RETENTION_DAYS = 30


class Settings(BaseSettings):
    reads_environment: ClassVar[bool] = False
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, frozen=True, extra="ignore", str_strip_whitespace=True
    )

    routes: Path = Field(Path("routes.yaml"), description="the routes file")
    state_dir: Path = Field(Path(".kfp-trigger"), description="local state: ledger, sinks, runs, packages")
    landing_dir: Path = Field(Path("landing"), description="the local stand-in for buckets")
    ledger: Annotated[str, _url(LEDGER_URLS)] = ""  # default: sqlite:///<state_dir>/ledger.sqlite3
    results: Annotated[str, _url(SINK_URLS)] = ""  # default: jsonl:///<state_dir>/results.jsonl
    quarantine: Annotated[str, _url(SINK_URLS)] = ""  # default: jsonl:///<state_dir>/quarantine.jsonl
    alerts: Annotated[str, _url(SINK_URLS)] = ""  # default: jsonl:///<state_dir>/alerts.jsonl
    alert_webhook: OptionalText = Field(
        None, description="a chat webhook (Slack-compatible) for alerts; a secret"
    )
    quarantine_burst: Annotated[int, Field(ge=1)] = 10  # this many quarantined between passes: an alert
    completion_topic: Annotated[str, _url(TOPIC_URLS)] = ""  # local runs publish their notice there
    schedules_topic: str = Field(
        SCHEDULES_TOPIC,
        pattern=r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$",
        description="the short name of the topic Cloud Scheduler jobs publish to (the module's "
        "PREFIX-schedules): a message elsewhere is never a schedule tick",
    )
    completion_url: OptionalText = Field(None, description="or post it straight to handle_completion (dev)")
    dead_letters: str = Field(
        "",
        pattern=r"^(projects/[^/]+/subscriptions/[^/]+)?$",
        description="the subscription holding deliveries that ran out of attempts (the module's "
        "PREFIX-dead-letter-hold, projects/P/subscriptions/S): each reconcile pass sends them on again",
    )
    deliveries: dict[str, str] = Field(
        default_factory=dict,
        description="each push subscription's short name → its push path (JSON; the module's): "
        "what a dead letter from it carries",
    )
    storage: Literal["local", "gcs"] = Field("local", description="where objects are read")
    telemetry: Literal["off", "gcp", "otlp", "memory"] = Field(
        "off", description="metrics and traces: off, gcp (Cloud Trace/Monitoring), otlp, memory"
    )
    auth: Literal["google-oidc", "none"] = "google-oidc"
    auth_audience: str = ""
    auth_emails: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_emails)] = ()  # every target's
    # Per target, replacing AUTH_EMAILS for it: each target's one caller (the events' push
    # subscriptions, the completions', Cloud Scheduler), so no caller may post to another target.
    auth_event_emails: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_emails)] = ()
    auth_completion_emails: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_emails)] = ()
    auth_reconcile_emails: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_emails)] = ()
    auth_status_emails: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_emails)] = ()
    auth_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    kfp_host: str = Field("", description="the KFP API endpoint, for pipelines with backend: kfp")
    kfp_namespace: str = "kubeflow"
    kfp_client_id: str = Field("", description="IAP-protected Kubeflow: the OAuth client id")
    kfp_token: str = Field("", description="a bearer token, where neither ADC nor IAP applies")
    kfp_token_file: str = Field("", description="in-cluster: the projected service-account token")
    vertex_project: str = ""
    vertex_location: str = ""
    vertex_pipeline_root: str = Field("", description="gs://… where Vertex writes run outputs")
    vertex_service_account: str = Field("", description="the pipeline runner's identity")
    vertex_endpoint: str = Field("", description="default: <location>-aiplatform.googleapis.com")
    notify_image: Annotated[str, AfterValidator(_by_digest)] = Field(
        "", description="the image notified pipelines' exit step runs from, by digest (IMAGE@sha256:…)"
    )
    backend_timeout_seconds: Positive = 60.0  # each KFP or Vertex API request (connect at most 10 s)
    # Larger bodies are quarantined unread (a product message, a notification, a log entry is small).
    max_body_bytes: Annotated[int, Field(gt=0)] = 512 * 1024
    claim_lease_seconds: Positive = 120.0
    reconcile_grace_seconds: Annotated[float, Field(ge=0)] = 60.0  # younger runs are left to their notice
    # a join window is recorded expired this long after it closed: instances' clocks may differ
    join_grace_seconds: Annotated[float, Field(ge=0)] = 60.0
    paused: bool = False  # hold every submission in the queue (as `kfp-trigger pause` does)
    retention_days: Annotated[int, Field(ge=1)] = DEFAULT_RETENTION_DAYS  # Firestore documents' TTL
    log_format: Literal["json", "text"] = "json"  # json: Cloud Logging's structured lines

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """`Settings(...)` takes its arguments only; `from_environment()` adds the environment."""
        return (init_settings, env_settings) if cls.reads_environment else (init_settings,)

    @classmethod
    def from_environment(cls, defaults: Mapping[str, Any] | None = None, **overrides: Any) -> Settings:
        """Read the `KFP_TRIGGER_*` variables; `overrides` win over them, and they win over
        `defaults` (a command's own defaults, e.g. `dev`'s AUTH=none), which win over the fields'.

        Only `functions.bootstrap` calls this: it is the one reader of the environment.

        Raises:
            SettingsError: a variable is malformed; the message names it.
        """
        try:
            read = _FromEnvironment(**overrides)
            values = read.model_dump()
            values |= {k: v for k, v in (defaults or {}).items() if k not in read.model_fields_set}
            return Settings(**values)
        except ValidationError as exc:
            raise SettingsError("; ".join(_problem(error) for error in exc.errors())) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes`, validated like the original."""
        try:
            return Settings(**(self.model_dump() | changes))
        except ValidationError as exc:
            raise SettingsError("; ".join(_problem(error) for error in exc.errors())) from None

    @field_serializer("auth_emails", "auth_event_emails", "auth_completion_emails", "auth_reconcile_emails")
    def _comma_separated(self, emails: tuple[str, ...]) -> str:
        return ",".join(emails)

    def callers(self) -> dict[str, tuple[str, ...]]:
        """Who may call each target: its own list, or AUTH_EMAILS."""
        own = {
            "handle_event": self.auth_event_emails,
            "handle_completion": self.auth_completion_emails,
            "reconcile": self.auth_reconcile_emails,
            "status_page": self.auth_status_emails,
        }
        return {target: emails or self.auth_emails for target, emails in own.items()}

    def to_environment(self) -> dict[str, str]:
        """The variables that reproduce these settings (non-default ones only)."""
        defaults = Settings().model_dump(mode="json")
        current = self.model_dump(mode="json")
        return {
            f"{PREFIX}{name.upper()}": _text(value)
            for name, value in current.items()
            if value != defaults[name]
        }

    @property
    def ledger_url(self) -> str:
        return self.ledger or f"sqlite://{(self.state_dir / 'ledger.sqlite3').resolve()}"

    @property
    def results_url(self) -> str:
        return self.results or f"jsonl://{(self.state_dir / 'results.jsonl').resolve()}"

    @property
    def quarantine_url(self) -> str:
        return self.quarantine or f"jsonl://{(self.state_dir / 'quarantine.jsonl').resolve()}"

    @property
    def alerts_url(self) -> str:
        return self.alerts or f"jsonl://{(self.state_dir / 'alerts.jsonl').resolve()}"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def packages_dir(self) -> Path:
        return self.state_dir / "packages"

    def check_serving(self) -> None:
        """What a server needs beyond what every command needs.

        Raises:
            SettingsError: OIDC is on without its audience or allowed emails.
        """
        if self.auth != "google-oidc":
            return
        # The status page may have no viewers listed: then nobody may open it (403).
        unlisted = [
            target for target, emails in self.callers().items() if not emails and target != "status_page"
        ]
        for name, missing in (("AUTH_AUDIENCE", not self.auth_audience), ("AUTH_EMAILS", bool(unlisted))):
            if missing:
                raise SettingsError(
                    f"{PREFIX}{name} is required while {PREFIX}AUTH is google-oidc "
                    f"(set {PREFIX}AUTH=none only where nothing but you can reach the server)"
                )


class _FromEnvironment(Settings):
    reads_environment: ClassVar[bool] = True


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


def _problem(error: Any) -> str:
    name = f"{PREFIX}{str(error['loc'][0]).upper()}" if error["loc"] else PREFIX.rstrip("_")
    given = error.get("input")
    shown = f"; got {str(given)[:80]!r}" if isinstance(given, str | int | float) else ""
    return f"{name}: {str(error['msg']).removeprefix('Value error, ')}{shown}"


TEST_KNOBS = ("KFP_TRIGGER_LIVE_", "KFP_TRIGGER_HUNT")  # the test suite's own variables


def unknown_variables(environ: Mapping[str, str], also: Collection[str] = ()) -> list[str]:
    """Each `KFP_TRIGGER_*` variable that is no setting (nor in `also`: routes' signature
    secrets), with the nearest setting's name: a misspelt one would be ignored silently."""
    known = [f"{PREFIX}{name.upper()}" for name in Settings.model_fields]
    found = []
    for name in sorted(environ):
        if (
            name.startswith(PREFIX)
            and name not in known
            and name not in also
            and not name.startswith(TEST_KNOBS)
        ):
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            found.append(
                f"{name} is not a kfp-trigger setting" + (f"; did you mean {near[0]}?" if near else "")
            )
    return found
