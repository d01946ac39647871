"""Every HTTP target refuses callers Google did not vouch for (functions-framework server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import env_for, free_port, functions_framework, server, storage_event
from tests.support.oidc import AUDIENCE, CALLER, Issuer, certs_endpoint, tampered, unsigned

pytestmark = pytest.mark.slow  # servers and CLI commands in subprocesses


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def targets(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("auth")
    with certs_endpoint(issuer) as certs_url:
        env = env_for(
            state,
            KFP_TRIGGER_AUTH="google-oidc",
            KFP_TRIGGER_AUTH_AUDIENCE=AUDIENCE,
            KFP_TRIGGER_AUTH_EMAILS=f"{CALLER},scheduler@acme-analytics.iam.gserviceaccount.com",
            KFP_TRIGGER_AUTH_CERTS_URL=certs_url,
        )
        urls: dict[str, str] = {}
        with (
            server(*_target("handle_event", env, state)) as urls["handle_event"],
            server(*_target("handle_completion", env, state)) as urls["handle_completion"],
            server(*_target("reconcile", env, state)) as urls["reconcile"],
        ):
            yield urls


def _target(name: str, env: dict[str, str], state: Path) -> tuple[list[str], dict[str, str], int, Path]:
    port = free_port()
    return functions_framework(name, port), env, port, state / f"{name}.log"


def post(url: str, token: str | None) -> requests.Response:
    headers, body = storage_event("some-bucket", "folder/auth.csv")
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return requests.post(url, data=body, headers=headers, timeout=30)


@pytest.mark.parametrize("target", ["handle_event", "handle_completion", "reconcile"])
def test_a_valid_token_passes(targets: dict[str, str], issuer: Issuer, target: str) -> None:
    response = post(targets[target], issuer.token())
    assert response.status_code == 200, response.text


REFUSED = {
    "missing header": (lambda issuer: None, 401),
    "expired": (lambda issuer: issuer.token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), 401),
    "wrong audience": (lambda issuer: issuer.token(aud="https://somebody-else.run.app"), 401),
    "wrong issuer": (lambda issuer: issuer.token(iss="https://evil.example.com"), 401),
    "email not allowed": (lambda issuer: issuer.token(email="intruder@other.iam.gserviceaccount.com"), 403),
    "email not verified": (lambda issuer: issuer.token(email_verified=False), 403),
    "email missing": (lambda issuer: issuer.token(email=None), 403),
    "tampered signature": (lambda issuer: tampered(issuer.token()), 401),
    "alg none": (lambda issuer: unsigned(issuer.token()), 401),
    "signed by another key": (lambda issuer: Issuer().token(), 401),
}


@pytest.mark.parametrize("target", ["handle_event", "handle_completion", "reconcile"])
@pytest.mark.parametrize("case", list(REFUSED))
def test_refused(targets: dict[str, str], issuer: Issuer, target: str, case: str) -> None:
    make, status = REFUSED[case]
    response = post(targets[target], make(issuer))
    assert response.status_code == status, response.text
    assert "error" in response.json()
    assert "outcome" not in response.json(), "nothing was processed"


def test_auth_on_without_an_audience_answers_500_and_names_the_variable(tmp_path: Path) -> None:
    port = free_port()
    env = env_for(tmp_path, KFP_TRIGGER_AUTH="google-oidc")
    with server(functions_framework("handle_event", port), env, port, tmp_path / "log") as url:
        response = requests.post(url, data=b"{}", timeout=30)
    assert response.status_code == 500
    assert "KFP_TRIGGER_AUTH_AUDIENCE is required" in (tmp_path / "log").read_text()


def test_each_target_admits_only_its_own_caller(issuer: Issuer, tmp_path: Path) -> None:
    """With a caller per target, the event trigger's token cannot post completion notices or run
    the reconciler, and the scheduler's cannot post events; nobody opens a status page that lists
    no viewers."""
    scheduler = "kfpt-scheduler@acme-analytics.iam.gserviceaccount.com"
    with certs_endpoint(issuer) as certs_url:
        env = env_for(
            tmp_path,
            KFP_TRIGGER_AUTH="google-oidc",
            KFP_TRIGGER_AUTH_AUDIENCE=AUDIENCE,
            KFP_TRIGGER_AUTH_EVENT_EMAILS=CALLER,
            KFP_TRIGGER_AUTH_COMPLETION_EMAILS="kfpt-notice-invoker@acme-analytics.iam.gserviceaccount.com",
            KFP_TRIGGER_AUTH_RECONCILE_EMAILS=scheduler,
            KFP_TRIGGER_AUTH_CERTS_URL=certs_url,
        )
        urls: dict[str, str] = {}
        with (
            server(*_target("handle_event", env, tmp_path)) as urls["handle_event"],
            server(*_target("handle_completion", env, tmp_path)) as urls["handle_completion"],
            server(*_target("reconcile", env, tmp_path)) as urls["reconcile"],
            server(*_target("status_page", env, tmp_path)) as urls["status_page"],
        ):
            events_caller, scheduler_token = issuer.token(), issuer.token(email=scheduler)
            viewer = {"authorization": f"Bearer {events_caller}"}
            # No viewers listed: the status page admits nobody, and the other targets serve.
            assert requests.get(urls["status_page"], headers=viewer, timeout=30).status_code == 403
            assert post(urls["handle_event"], events_caller).status_code == 200
            assert post(urls["handle_completion"], events_caller).status_code == 403
            assert post(urls["reconcile"], events_caller).status_code == 403
            assert post(urls["reconcile"], scheduler_token).status_code == 200
            assert post(urls["handle_event"], scheduler_token).status_code == 403
