"""A small, real OpenID Connect provider for tests, on 127.0.0.1 in a thread.

Authorization-code flow with PKCE (S256), a discovery document, a JWKS endpoint, RS256 ID
tokens signed with joserfc (Authlib's JOSE library), client authentication by secret (basic
or post) and a userinfo endpoint. It has no login form: ``/authorize`` approves whoever ``user`` names at the
time (tests switch it between sign-ins). Every check a provider must make on the token request
is made (client, secret, code, redirect URI, PKCE verifier, single use), so a client that gets
the flow wrong fails here as it would against a real provider.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

# joserfc: Authlib's JOSE library (authlib.jose is deprecated in its favour), installed with it.
from joserfc import jwt
from joserfc.jwk import RSAKey


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    email: str
    challenge: str | None
    method: str | None


@dataclass
class OIDCProvider:
    client_id: str = "payoff-test"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    redirect_uris: tuple[str, ...] = ()
    user: str = "analyst@example.org"
    names: dict[str, str] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = RSAKey.generate_key(2048)
        self._kid = "test-key"
        self._grants: dict[str, _Grant] = {}
        self._tokens: dict[str, str] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # ---- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> OIDCProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    # ---- protocol ---------------------------------------------------------------------------

    def _metadata(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "email", "email_verified", "name"],
        }

    def _jwks(self) -> dict:
        public = self._key.as_dict(private=False)
        return {"keys": [{**public, "kid": self._kid, "alg": "RS256", "use": "sig"}]}

    def _claims(self, email: str) -> dict:
        return {
            "sub": hashlib.sha256(email.encode()).hexdigest()[:16],
            "email": email,
            "email_verified": True,
            "name": self.names.get(email, email.split("@")[0].title()),
        }

    def _authorize(self, query: dict[str, str]) -> tuple[int, dict, bytes]:
        if query.get("client_id") != self.client_id:
            return 400, {}, b"unknown client_id"
        redirect = query.get("redirect_uri", "")
        if redirect not in self.redirect_uris:
            return 400, {}, b"redirect_uri is not registered"
        if query.get("response_type") != "code" or "openid" not in query.get("scope", ""):
            return 400, {}, b"only the openid authorization-code flow is supported"
        code = secrets.token_urlsafe(24)
        self._grants[code] = _Grant(
            self.client_id,
            redirect,
            query.get("nonce"),
            self.user,
            query.get("code_challenge"),
            query.get("code_challenge_method"),
        )
        target = f"{redirect}?{urlencode({'code': code, 'state': query.get('state', '')})}"
        return 302, {"Location": target}, b""

    def _token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict]:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        if client_id != self.client_id or secret != self.client_secret:
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        grant = self._grants.pop(form.get("code", ""), None)  # single use
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        if grant.challenge:
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if grant.method != "S256" or expected != grant.challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            **self._claims(grant.email),
        }
        if grant.nonce:
            claims["nonce"] = grant.nonce
        id_token = jwt.encode({"alg": "RS256", "kid": self._kid}, claims, self._key)
        access_token = secrets.token_urlsafe(24)
        self._tokens[access_token] = grant.email
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
            "scope": "openid email profile",
        }

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet; paths are kept in provider.requests
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self._send(status, body, {"Content-Type": "application/json"})

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urlsplit(self.path)
                provider.requests.append(url.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, provider._metadata())
                elif url.path == "/jwks":
                    self._json(200, provider._jwks())
                elif url.path == "/authorize":
                    status, headers, body = provider._authorize(query)
                    self._send(status, body, headers)
                elif url.path == "/userinfo":
                    token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    email = provider._tokens.get(token)
                    if email is None:
                        self._json(401, {"error": "invalid_token"})
                    else:
                        self._json(200, provider._claims(email))
                else:
                    self._send(404, b"not found")

            def do_POST(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                provider.requests.append(url.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if url.path == "/token":
                    status, payload = provider._token(form, self.headers.get("Authorization"))
                    self._json(status, payload)
                else:
                    self._send(404, b"not found")

        return Handler
