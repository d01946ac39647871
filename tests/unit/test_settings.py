"""Settings: one field per KFP_TRIGGER_* variable, read from the environment by bootstrap only."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions import bootstrap
from functions.settings import Settings, SettingsError


def test_constructing_settings_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFP_TRIGGER_AUTH", "none")
    assert Settings().auth == "google-oidc"
    assert bootstrap.settings().auth == "none"


def test_the_environment_wins_over_a_commands_defaults_and_options_win_over_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KFP_TRIGGER_LOG_FORMAT", "json")
    read = bootstrap.settings({"log_format": "text", "auth": "none"}, routes=Path("r.yaml"))
    assert (read.log_format, read.auth, read.routes) == ("json", "none", Path("r.yaml"))


def test_every_kind_of_value_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "KFP_TRIGGER_AUTH_EMAILS", " a@x.iam.gserviceaccount.com, b@x.iam.gserviceaccount.com "
    )
    monkeypatch.setenv("KFP_TRIGGER_PAUSED", "true")
    monkeypatch.setenv("KFP_TRIGGER_CLAIM_LEASE_SECONDS", "30")
    monkeypatch.setenv("KFP_TRIGGER_LEDGER", "firestore://acme-analytics/runs")
    read = bootstrap.settings()
    assert read.auth_emails == ("a@x.iam.gserviceaccount.com", "b@x.iam.gserviceaccount.com")
    assert (read.paused, read.claim_lease_seconds, read.ledger_url) == (
        True,
        30.0,
        "firestore://acme-analytics/runs",
    )


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (
            "KFP_TRIGGER_LEDGER",
            "mysql://db/runs",
            "expected sqlite:///path/to/ledger.sqlite3 or firestore://PROJECT/COLLECTION?database=NAME",
        ),
        (
            "KFP_TRIGGER_RESULTS",
            "pubsub://topics/x",
            "expected jsonl:///path/to/file.jsonl or pubsub://projects/PROJECT/topics/TOPIC",
        ),
        ("KFP_TRIGGER_CLAIM_LEASE_SECONDS", "0", "greater than 0"),
        ("KFP_TRIGGER_CLAIM_LEASE_SECONDS", "soon", "valid number"),
        ("KFP_TRIGGER_AUTH", "basic", "'google-oidc' or 'none'"),
        ("KFP_TRIGGER_PAUSED", "maybe", "valid boolean"),
    ],
)
def test_a_malformed_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable) as raised:
        bootstrap.settings()
    assert says in str(raised.value)


def test_settings_render_the_variables_that_reproduce_them(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(auth="none", auth_emails=("a@x", "b@x"), paused=True, max_body_bytes=1024)
    rendered = settings.to_environment()
    assert rendered == {
        "KFP_TRIGGER_AUTH": "none",
        "KFP_TRIGGER_AUTH_EMAILS": "a@x,b@x",
        "KFP_TRIGGER_MAX_BODY_BYTES": "1024",
        "KFP_TRIGGER_PAUSED": "true",
    }
    for name, value in rendered.items():
        monkeypatch.setenv(name, value)
    assert bootstrap.settings() == settings


def test_the_notify_image_is_named_by_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFP_TRIGGER_NOTIFY_IMAGE", "europe-docker.pkg.dev/acme/kfp/kfp-trigger-notify:2.17.3")
    with pytest.raises(SettingsError, match=r"KFP_TRIGGER_NOTIFY_IMAGE: .*must name the image by digest"):
        bootstrap.settings()
    pinned = "europe-docker.pkg.dev/acme/kfp/kfp-trigger-notify@sha256:" + "0" * 64
    monkeypatch.setenv("KFP_TRIGGER_NOTIFY_IMAGE", pinned)
    assert bootstrap.settings().notify_image == pinned


def test_oidc_with_a_caller_per_target_needs_no_status_page_viewers() -> None:
    """With no viewers listed the status page admits nobody (403); serving needs none."""
    settings = Settings(
        auth="google-oidc",
        auth_audience="https://events.example",
        auth_event_emails=("e@x.iam.gserviceaccount.com",),
        auth_completion_emails=("n@x.iam.gserviceaccount.com",),
        auth_reconcile_emails=("s@x.iam.gserviceaccount.com",),
    )
    settings.check_serving()
    assert settings.callers()["status_page"] == ()


def test_the_local_files_are_named_by_their_plain_absolute_paths(tmp_path: Path) -> None:
    """What `status`, `doctor` and `demo` print: /x/ledger.sqlite3, never //x/ledger.sqlite3."""
    settings = Settings(state_dir=tmp_path)
    for url in (settings.ledger_url, settings.results_url, settings.quarantine_url, settings.alerts_url):
        assert str(bootstrap.path_of(url)).startswith(f"{tmp_path}/"), url
    assert bootstrap.path_of("sqlite:////data/ledger.sqlite3") == Path("/data/ledger.sqlite3")
    assert str(bootstrap.path_of("jsonl:////data/results.jsonl")) == "/data/results.jsonl"


def test_an_unknown_variable_is_named_with_the_nearest_setting() -> None:
    from functions.settings import unknown_variables

    environ = {
        "KFP_TRIGGER_PAUSD": "true",
        "KFP_TRIGGER_PAUSED": "true",
        "KFP_TRIGGER_SIGNING": "s",
        "HOME": "/",
    }
    assert unknown_variables(environ, also={"KFP_TRIGGER_SIGNING"}) == [
        "KFP_TRIGGER_PAUSD is not a kfp-trigger setting; did you mean KFP_TRIGGER_PAUSED?"
    ]
