"""Configuration, read once from the environment into a frozen `Settings`.

Every variable is `KFP_TRIGGER_*`; the CLI's options mirror them (click `envvar=`). A malformed
value fails at start-up with the variable's name. Library code receives `Settings`; only the
edges (bootstrap, CLI) read the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from events.errors import PermanentError

PREFIX = "KFP_TRIGGER_"


class SettingsError(PermanentError):
    """A configuration variable is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Settings:
    routes: Path = Path("routes.yaml")
    state_dir: Path = Path(".kfp-trigger")
    landing_dir: Path = Path("landing")
    completion_url: str | None = None
    max_body_bytes: int = 512 * 1024  # Eventarc's own event size limit
    claim_lease_seconds: float = 120.0

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.sqlite3"

    @property
    def results_path(self) -> Path:
        return self.state_dir / "results.jsonl"

    @property
    def quarantine_path(self) -> Path:
        return self.state_dir / "quarantine.jsonl"

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
            SettingsError: a variable is set but malformed; the message names it.
        """
        defaults = cls()
        return cls(
            routes=Path(env.get(f"{PREFIX}ROUTES", str(defaults.routes))),
            state_dir=Path(env.get(f"{PREFIX}STATE_DIR", str(defaults.state_dir))),
            landing_dir=Path(env.get(f"{PREFIX}LANDING_DIR", str(defaults.landing_dir))),
            completion_url=env.get(f"{PREFIX}COMPLETION_URL") or None,
            max_body_bytes=int(_number(env, "MAX_BODY_BYTES", defaults.max_body_bytes)),
            claim_lease_seconds=_number(env, "CLAIM_LEASE_SECONDS", defaults.claim_lease_seconds),
        )

    def to_env(self) -> dict[str, str]:
        """The variables that reproduce these settings in another process."""
        env = {
            f"{PREFIX}ROUTES": str(self.routes),
            f"{PREFIX}STATE_DIR": str(self.state_dir),
            f"{PREFIX}LANDING_DIR": str(self.landing_dir),
            f"{PREFIX}MAX_BODY_BYTES": str(self.max_body_bytes),
            f"{PREFIX}CLAIM_LEASE_SECONDS": str(self.claim_lease_seconds),
        }
        if self.completion_url:
            env[f"{PREFIX}COMPLETION_URL"] = self.completion_url
        return env


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(f"{PREFIX}{name}")
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a number, got {raw[:40]!r}") from None
    if value <= 0:
        raise SettingsError(f"{PREFIX}{name} must be positive")
    return value
