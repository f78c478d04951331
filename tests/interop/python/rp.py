"""A CIBA relying party on idpyoidc (IdentityPython), in poll or ping mode.

idpyoidc discovers the server, authenticates the client (client_secret_basic or
private_key_jwt, its own implementations), sends the backchannel authentication request with
its CIBA service and verifies the ID token of the token response (signature against the
server's JWKS, iss, aud, exp, iat, at_hash). It has no CIBA token service, so ``CibaToken``
gives its OpenID Connect token service the CIBA grant's request message; what no library
checks for us, this client checks itself: the ID token binds the refresh token (rt_hash) and
this request (auth_req_id, required after a ping: CIBA 10.2).

Configuration from the environment, as in the openid-client examples:
ISSUER, CLIENT_ID, CLIENT_SECRET or CLIENT_KEY (a private JWK file, with kid and alg),
MODE (poll or ping), NOTIFICATION_ENDPOINT (ping), LOGIN_HINT, BINDING_MESSAGE, SCOPE,
ID_TOKEN_ALG (the registered id_token_signed_response_alg, default RS256).
Prints what it received as JSON (never a token).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import queue
import secrets
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from threading import Thread
from typing import Any
from urllib.parse import urlsplit

from cryptojwt.jwk.jwk import key_from_jwk_dict
from cryptojwt.jws.utils import left_hash
from cryptojwt.key_jar import KeyJar
from idpyoidc.client.oauth2 import Client
from idpyoidc.client.oidc.access_token import AccessToken
from idpyoidc.message.oidc import backchannel_authentication as ciba

GRANT = "urn:openid:params:grant-type:ciba"
env = os.environ


class CibaToken(AccessToken):
    """idpyoidc's OpenID Connect token service, for the CIBA grant (CIBA 10.1)."""

    msg_type = ciba.TokenRequest
    service_name = "ciba_token"

    def __init__(self, upstream_get: Any, conf: dict | None = None) -> None:
        super().__init__(upstream_get, conf=conf)
        self.pre_construct = []  # the code grant's steps (the code, by state): CIBA has none

    def gather_verify_arguments(self, response: Any = None, behaviour_args: Any = None) -> dict:
        arguments = super().gather_verify_arguments(response, behaviour_args)
        arguments.update(check_hash=True, allowed_sign_alg=env.get("ID_TOKEN_ALG", "RS256"))
        return arguments

    def update_service_context(self, resp: Any, key: str = "", **kwargs: Any) -> None:
        """Nothing to remember: no authorization code, no nonce, no state in CIBA."""


def client() -> Client:
    """An idpyoidc client that has discovered the server and knows its own credentials."""
    keyjar = KeyJar()
    config: dict[str, Any] = {"client_id": env["CLIENT_ID"], "issuer": env["ISSUER"]}
    authn_args = {}
    if env.get("CLIENT_KEY"):
        with open(env["CLIENT_KEY"]) as handle:
            jwk = json.load(handle)
        keyjar.add_keys("", [key_from_jwk_dict(jwk)])
        method = "private_key_jwt"
        # idpyoidc's default is RS256 whatever the key: name the algorithm for the backchannel
        # request (authn_args) and, as registered, for the token endpoint (below).
        authn_args["algorithm"] = jwk["alg"]
    else:
        config["client_secret"] = env["CLIENT_SECRET"]
        method = "client_secret_basic"
    services = {
        "discovery": {"class": "idpyoidc.client.oidc.provider_info_discovery.ProviderInfoDiscovery"},
        "backchannel_authentication": {
            "class": "idpyoidc.client.oidc.backchannel_authentication.BackChannelAuthentication"
        },
        "ciba_token": {"class": CibaToken},
    }
    config["client_authn_methods"] = [method]
    rp = Client(keyjar=keyjar, config=config, services=services, client_type="oidc")
    rp.do_request("provider_info")  # OpenID Connect discovery; the server's JWKS into the key jar
    if "algorithm" in authn_args:
        rp.get_context().set_usage("token_endpoint_auth_signing_alg", authn_args["algorithm"])
    for name in ("backchannel_authentication", "ciba_token"):
        rp.get_service(name).default_authn_method = method
    rp.authn_args = authn_args
    return rp


def _ask(rp: Client, extra: dict[str, str]) -> Any:
    """The authentication request (CIBA 7.1) through idpyoidc's CIBA service."""
    request = {
        "scope": env.get("SCOPE", "openid").split(),
        "login_hint": env["LOGIN_HINT"],
        "binding_message": env["BINDING_MESSAGE"],
        **extra,
    }
    # idpyoidc's service would send a GET; CIBA 7.1 is a POST.
    started = rp.do_request(
        "backchannel_authentication", request_args=request, method="POST", **rp.authn_args
    )
    if "error" in started:
        raise SystemExit(f"backchannel authentication refused: {started.to_dict()}")
    return started


def _token(rp: Client, auth_req_id: str) -> Any:
    request = {"grant_type": GRANT, "auth_req_id": auth_req_id}
    return rp.do_request("ciba_token", request_args=request, **rp.authn_args)


def poll(rp: Client, started: Any) -> Any:
    """Poll at ``interval``, 5 s more after each slow_down, until ``expires_in`` (CIBA 7.3, 11)."""
    interval, deadline = int(started.get("interval", 5)), time.monotonic() + int(started["expires_in"])
    while time.monotonic() < deadline:
        time.sleep(interval)
        tokens = _token(rp, started["auth_req_id"])
        error = tokens.get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            return tokens
    raise SystemExit("the request expired before the user decided")


def wait_for_ping(endpoint: str, token: str) -> queue.Queue[dict]:
    """The client notification endpoint (CIBA 10.2): the bearer token we chose, 204, the auth_req_id."""
    pings: queue.Queue[dict] = queue.Queue()
    expected = f"Bearer {token}".encode()

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if not hmac.compare_digest(self.headers.get("Authorization", "").encode(), expected):
                self.send_response(401)
                self.end_headers()
                return
            self.send_response(204)
            self.end_headers()
            pings.put(json.loads(body))

        def log_message(self, *args: Any) -> None:
            pass

    parts = urlsplit(endpoint)
    server = HTTPServer((parts.hostname, parts.port), Endpoint)
    Thread(target=server.serve_forever, daemon=True).start()
    return pings


def check_bindings(tokens: Any, auth_req_id: str, required: bool) -> dict:
    """What idpyoidc leaves to us: rt_hash (a refresh token came with the ID token) and the
    auth_req_id claim (it must name this request; required after a ping)."""
    claims = tokens["__verified_id_token"].to_dict()
    alg = "HS" + tokens["__verified_id_token"].jws_header["alg"][-3:]  # the hash of the ID token's alg
    if "refresh_token" in tokens:
        if claims.get("urn:openid:params:jwt:claim:rt_hash") != left_hash(tokens["refresh_token"], alg):
            raise SystemExit("the ID token does not belong to this refresh token (rt_hash)")
    request_id = claims.get("urn:openid:params:jwt:claim:auth_req_id")
    if (required or request_id is not None) and request_id != auth_req_id:
        raise SystemExit("the ID token was not issued for this request (auth_req_id)")
    return claims


def main() -> None:
    logging.basicConfig(level=logging.ERROR)  # idpyoidc warns about every response's media type
    rp = client()
    mode = env.get("MODE", "poll")
    if mode == "ping":
        notification_token = secrets.token_urlsafe(32)
        pings = wait_for_ping(env["NOTIFICATION_ENDPOINT"], notification_token)
        started = _ask(rp, {"client_notification_token": notification_token})
        ping = pings.get(timeout=int(started["expires_in"]))
        if ping.get("auth_req_id") != started["auth_req_id"]:
            raise SystemExit("a ping for another request")
        tokens = _token(rp, started["auth_req_id"])  # once: the result is ready
    else:
        started = _ask(rp, {})
        tokens = poll(rp, started)
    if "error" in tokens:
        raise SystemExit(f"no tokens: {tokens.to_dict()}")
    claims = check_bindings(tokens, started["auth_req_id"], required=mode == "ping")
    print(
        json.dumps(
            {
                "auth_req_id": started["auth_req_id"],
                "token_type": tokens["token_type"],
                "scope": tokens.get("scope"),
                "refresh_token": "refresh_token" in tokens,
                "claims": {k: v for k, v in claims.items() if not k.startswith("__")},
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
