"""Configuration, read once from the environment into a frozen `Settings`.

Every variable is `KFP_TRIGGER_*`; the CLI's options mirror them (click `envvar=`). Adapters are
chosen by URL (`sqlite:///…` or `firestore://PROJECT/COLLECTION` for the ledger; `jsonl:///…` or
`pubsub://projects/P/topics/T` for the sinks). A missing or malformed value fails at start-up
naming its variable. Library code receives `Settings`; only the edges (bootstrap, CLI) read the
environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from events.errors import PermanentError

PREFIX = "KFP_TRIGGER_"

# scheme → the shape of the rest, for each kind of adapter URL.
LEDGER_URLS = {"sqlite": r"^sqlite:///.+$", "firestore": r"^firestore://[a-z][a-z0-9-]{4,29}/[A-Za-z0-9_-]+$"}
SINK_URLS = {"jsonl": r"^jsonl:///.+$", "pubsub": r"^pubsub://projects/[^/]+/topics/[^/]+$"}
AUTH_MODES = ("google-oidc", "none")
STORAGE_KINDS = ("local", "gcs")


class SettingsError(PermanentError):
    """A configuration variable is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Settings:
    routes: Path = Path("routes.yaml")
    state_dir: Path = Path(".kfp-trigger")
    landing_dir: Path = Path("landing")
    ledger: str = ""  # default: sqlite:///<state_dir>/ledger.sqlite3
    results: str = ""  # default: jsonl:///<state_dir>/results.jsonl
    quarantine: str = ""  # default: jsonl:///<state_dir>/quarantine.jsonl
    completion_topic: str = ""  # pubsub://… : local runs publish their notice there
    completion_url: str | None = None  # or post it straight to handle_completion (dev)
    storage: str = "local"  # where objects are read: the landing folder, or Cloud Storage
    auth: str = "google-oidc"
    auth_audience: str = ""
    auth_emails: tuple[str, ...] = ()
    auth_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    kfp_host: str = ""  # the KFP API endpoint, for pipelines with backend: kfp
    kfp_namespace: str = "kubeflow"
    kfp_client_id: str = ""  # IAP-protected Kubeflow: the OAuth client id
    kfp_token: str = ""  # a bearer token, where neither ADC nor IAP applies
    kfp_token_file: str = ""  # in-cluster: the projected service-account token
    vertex_project: str = ""  # for pipelines with backend: vertex
    vertex_location: str = ""
    vertex_pipeline_root: str = ""  # gs://… where Vertex writes run outputs
    vertex_service_account: str = ""  # the pipeline runner's identity (not the Compute default)
    vertex_endpoint: str = ""  # default: <location>-aiplatform.googleapis.com
    max_body_bytes: int = 512 * 1024  # Eventarc's own event size limit
    claim_lease_seconds: float = 120.0
    reconcile_grace_seconds: float = 60.0  # runs younger than this are left to their notice
    paused: bool = False  # hold every submission in the queue (as `kfp-trigger pause` does)
    log_format: str = "json"  # json: Cloud Logging's structured lines; text: for a terminal

    @property
    def ledger_url(self) -> str:
        return self.ledger or f"sqlite:///{(self.state_dir / 'ledger.sqlite3').resolve()}"

    @property
    def results_url(self) -> str:
        return self.results or f"jsonl:///{(self.state_dir / 'results.jsonl').resolve()}"

    @property
    def quarantine_url(self) -> str:
        return self.quarantine or f"jsonl:///{(self.state_dir / 'quarantine.jsonl').resolve()}"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def packages_dir(self) -> Path:
        return self.state_dir / "packages"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read `KFP_TRIGGER_*` variables; unset ones keep their defaults.

        Raises:
            SettingsError: a variable is malformed; the message names it.
        """
        defaults = cls()

        def text(name: str, default: str) -> str:
            return env.get(f"{PREFIX}{name}", "").strip() or default

        return cls(
            routes=Path(text("ROUTES", str(defaults.routes))),
            state_dir=Path(text("STATE_DIR", str(defaults.state_dir))),
            landing_dir=Path(text("LANDING_DIR", str(defaults.landing_dir))),
            ledger=_url(env, "LEDGER", LEDGER_URLS),
            results=_url(env, "RESULTS", SINK_URLS),
            quarantine=_url(env, "QUARANTINE", SINK_URLS),
            completion_topic=_url(env, "COMPLETION_TOPIC", {"pubsub": SINK_URLS["pubsub"]}),
            completion_url=text("COMPLETION_URL", "") or None,
            storage=_choice(env, "STORAGE", STORAGE_KINDS),
            auth=_choice(env, "AUTH", AUTH_MODES),
            auth_audience=text("AUTH_AUDIENCE", ""),
            auth_emails=tuple(e.strip() for e in text("AUTH_EMAILS", "").split(",") if e.strip()),
            auth_certs_url=text("AUTH_CERTS_URL", defaults.auth_certs_url),
            kfp_host=text("KFP_HOST", ""),
            kfp_namespace=text("KFP_NAMESPACE", defaults.kfp_namespace),
            kfp_client_id=text("KFP_CLIENT_ID", ""),
            kfp_token=text("KFP_TOKEN", ""),
            kfp_token_file=text("KFP_TOKEN_FILE", ""),
            vertex_project=text("VERTEX_PROJECT", ""),
            vertex_location=text("VERTEX_LOCATION", ""),
            vertex_pipeline_root=text("VERTEX_PIPELINE_ROOT", ""),
            vertex_service_account=text("VERTEX_SERVICE_ACCOUNT", ""),
            vertex_endpoint=text("VERTEX_ENDPOINT", ""),
            max_body_bytes=int(_number(env, "MAX_BODY_BYTES", defaults.max_body_bytes)),
            claim_lease_seconds=_number(env, "CLAIM_LEASE_SECONDS", defaults.claim_lease_seconds),
            reconcile_grace_seconds=_number(
                env, "RECONCILE_GRACE_SECONDS", defaults.reconcile_grace_seconds, zero=True
            ),
            paused=_choice(env, "PAUSED", ("false", "true")) == "true",
            log_format=_choice(env, "LOG_FORMAT", ("json", "text")),
        )

    def check_serving(self) -> None:
        """What a server needs beyond what every command needs.

        Raises:
            SettingsError: OIDC is on without its audience or allowed emails.
        """
        if self.auth != "google-oidc":
            return
        for name, value in (("AUTH_AUDIENCE", self.auth_audience), ("AUTH_EMAILS", self.auth_emails)):
            if not value:
                raise SettingsError(
                    f"{PREFIX}{name} is required while {PREFIX}AUTH is google-oidc "
                    f"(set {PREFIX}AUTH=none only where nothing but you can reach the server)"
                )

    def to_env(self) -> dict[str, str]:
        """The variables that reproduce these settings in another process."""
        values = {
            "ROUTES": str(self.routes),
            "STATE_DIR": str(self.state_dir),
            "LANDING_DIR": str(self.landing_dir),
            "LEDGER": self.ledger,
            "RESULTS": self.results,
            "QUARANTINE": self.quarantine,
            "COMPLETION_TOPIC": self.completion_topic,
            "COMPLETION_URL": self.completion_url or "",
            "STORAGE": self.storage,
            "AUTH": self.auth,
            "AUTH_AUDIENCE": self.auth_audience,
            "AUTH_EMAILS": ",".join(self.auth_emails),
            "AUTH_CERTS_URL": self.auth_certs_url,
            "KFP_HOST": self.kfp_host,
            "KFP_NAMESPACE": self.kfp_namespace,
            "KFP_CLIENT_ID": self.kfp_client_id,
            "KFP_TOKEN": self.kfp_token,
            "KFP_TOKEN_FILE": self.kfp_token_file,
            "VERTEX_PROJECT": self.vertex_project,
            "VERTEX_LOCATION": self.vertex_location,
            "VERTEX_PIPELINE_ROOT": self.vertex_pipeline_root,
            "VERTEX_SERVICE_ACCOUNT": self.vertex_service_account,
            "VERTEX_ENDPOINT": self.vertex_endpoint,
            "MAX_BODY_BYTES": str(self.max_body_bytes),
            "CLAIM_LEASE_SECONDS": str(self.claim_lease_seconds),
            "RECONCILE_GRACE_SECONDS": str(self.reconcile_grace_seconds),
            "PAUSED": "true" if self.paused else "",
            "LOG_FORMAT": self.log_format,
        }
        return {f"{PREFIX}{name}": value for name, value in values.items() if value}


def _url(env: Mapping[str, str], name: str, shapes: Mapping[str, str]) -> str:
    raw = env.get(f"{PREFIX}{name}", "").strip()
    if not raw:
        return ""
    shape = shapes.get(urlsplit(raw).scheme)
    if shape is None or not re.match(shape, raw):
        accepted = ", ".join(f"{scheme}://…" for scheme in shapes)
        raise SettingsError(f"{PREFIX}{name} must be one of {accepted}; got {raw[:80]!r}")
    return raw


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = env.get(f"{PREFIX}{name}", "").strip() or choices[0]
    if raw not in choices:
        raise SettingsError(f"{PREFIX}{name} must be one of {', '.join(choices)}; got {raw[:40]!r}")
    return raw


def _number(env: Mapping[str, str], name: str, default: float, *, zero: bool = False) -> float:
    raw = env.get(f"{PREFIX}{name}")
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a number, got {raw[:40]!r}") from None
    if value < 0 or (value == 0 and not zero):
        raise SettingsError(f"{PREFIX}{name} must be {'zero or more' if zero else 'positive'}")
    return value
