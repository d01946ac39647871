"""A stand-in for Google's token issuer: a local RSA key, its certificate served over HTTP, and
ID tokens signed with it exactly as Google signs them (RS256, `kid` header)."""

from __future__ import annotations

import base64
import datetime
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt
from werkzeug.wrappers import Response

from tests.support import serving

KEY_ID = "test-key-1"
CALLER = "eventarc-trigger@acme-analytics.iam.gserviceaccount.com"
AUDIENCE = "https://handle-event-abc123-ew.a.run.app"


class Issuer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kfp-trigger test issuer")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.signer = crypt.RSASigner.from_string(pem, key_id=KEY_ID)

    @property
    def certs(self) -> dict[str, str]:
        return {KEY_ID: self.certificate.public_bytes(serialization.Encoding.PEM).decode()}

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "email": CALLER,
            "email_verified": True,
            "sub": "1234567890",
            "azp": "1234567890",
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(overrides)
        return jwt.encode(self.signer, {k: v for k, v in claims.items() if v is not None}).decode()


def unsigned(token: str) -> str:
    """The same claims with `alg: none` and no signature."""
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT", "kid": KEY_ID}).encode())
    payload = token.split(".")[1]
    return f"{header.decode().rstrip('=')}.{payload}."


def tampered(token: str) -> str:
    """The same token with one claim changed and the old signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "attacker@example.com"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


@contextmanager
def certs_endpoint(issuer: Issuer) -> Iterator[str]:
    """Serve the issuer's certificates the way https://www.googleapis.com/oauth2/v1/certs does."""
    body = json.dumps(issuer.certs)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return Response(body, 200, mimetype="application/json")(environ, start_response)

    with serving(app) as url:
        yield f"{url}/oauth2/v1/certs"
