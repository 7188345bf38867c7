"""A small OIDC token issuer for the benchmark: an RSA key, its JWKS over https, RS256 tokens.

`countersign serve` in production refuses a JWKS URL that is plain http or loopback (an identity
provider is called by its real name), so the issuer listens on this machine's own non-loopback
address with a certificate made for that address, and the service trusts that certificate
through `SSL_CERT_FILE` (httpx reads it when the shared client is built). Nothing else the
service calls in the benchmark uses https.

The JWKS is fetched once per API process (at its first token); tokens are minted here, in the
driver, like a Keycloak client-credentials or password grant would hand them out.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

REALM_PATH = "/realms/bench"
JWKS_PATH = f"{REALM_PATH}/protocol/openid-connect/certs"
AUDIENCE = "countersign"
KID = "bench-1"


class Issuer:
    """The key, the TLS certificate and the https JWKS endpoint (a daemon thread)."""

    def __init__(self, address: str, workdir: Path) -> None:
        self.address = address
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.cert_file = workdir / "bench-idp.pem"
        self._key_file = workdir / "bench-idp.key"
        self._write_certificate()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def issuer(self) -> str:
        return f"https://{self.address}:{self.port}{REALM_PATH}"

    @property
    def jwks_url(self) -> str:
        return f"https://{self.address}:{self.port}{JWKS_PATH}"

    def jwks(self) -> dict[str, Any]:
        jwk = dict(RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True))
        jwk.update({"use": "sig", "alg": "RS256", "kid": KID})
        return {"keys": [jwk]}

    def token(
        self,
        username: str,
        *,
        roles: tuple[str, ...] = (),
        azp: str = "countersign-ui",
        ttl_seconds: int = 6 * 3600,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": f"sub-{username}",
            "preferred_username": username,
            "azp": azp,
            "realm_access": {"roles": list(roles)},
            "iat": now,
            "exp": now + ttl_seconds,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})

    def start(self) -> Issuer:
        body = json.dumps(self.jwks()).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, payload = (200, body) if self.path == JWKS_PATH else (404, b"")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((self.address, 0), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self._key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="bench-idp",
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _write_certificate(self) -> None:
        """A self-signed certificate for the address (it is its own CA in SSL_CERT_FILE)."""
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, "countersign bench idp")]
        )
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address(self.address))]
                ),
                critical=False,
            )
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=None), critical=True
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        self._key_file.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self._key_file.chmod(0o600)
