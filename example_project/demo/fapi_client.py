"""A FAPI-CIBA client: a demo of what a bank's (or a shop's) back end does, not a library.

It uses the credentials ``manage.py ciba_demo_data --fapi --out DIR`` wrote (``client.json``,
``client.key``, ``client.crt``) and speaks to the server through its TLS terminator:

1. discovery: the issuer, the endpoints (their mutual-TLS aliases first) and the JWKS;
2. a PS256-signed request object to the backchannel authentication endpoint, over mutual TLS
   (plus a PS256 client assertion when the client uses ``private_key_jwt``);
3. polling the token endpoint at the server's ``interval`` until the user has decided;
4. the ID token verified: PS256, the server's key by ``kid``, ``aud`` and ``iss``;
5. userinfo with the certificate the access token is bound to (200), and without it (401).

    python -m example_project.demo.fapi_client --dir var/demo-fapi \\
        --server https://localhost:8443 --ca var/tls/server.crt --login-hint alice

Exit status 0 only if every step worked. docs/fapi.md runs it behind nginx.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization

ALG = "PS256"
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DISCOVERY = "/o/.well-known/openid-configuration"


class Failed(Exception):
    pass


class FapiClient:
    def __init__(self, directory: Path, server: str, ca: str) -> None:
        self.config = json.loads((directory / "client.json").read_text())
        self.client_id, self.kid = self.config["client_id"], self.config["kid"]
        self.key = serialization.load_pem_private_key((directory / "client.key").read_bytes(), None)
        self.cert = (str(directory / "client.crt"), str(directory / "client.key"))
        self.http = requests.Session()
        self.http.trust_env = False  # this CA, no proxy: REQUESTS_CA_BUNDLE would replace verify
        self.http.verify = ca
        self.meta = self.http.get(server.rstrip("/") + DISCOVERY, timeout=10).json()
        self.issuer = self.meta["issuer"]
        if self.issuer != server.rstrip("/") + "/o":
            raise Failed(f"discovery names the issuer {self.issuer}: set OIDC_ISS_ENDPOINT={server}/o")

    def endpoint(self, name: str) -> str:
        return self.meta.get("mtls_endpoint_aliases", {}).get(name) or self.meta[name]

    def signed(self, claims: dict[str, Any], lifetime: int = 300) -> str:
        """A PS256 JWT of this client, with the times and the ``jti`` the server checks."""
        now = int(time.time())
        claims = {"iss": self.client_id, "aud": self.issuer, "iat": now, "nbf": now, **claims}
        claims.update(exp=now + lifetime, jti=secrets.token_urlsafe(16))
        return jwt.encode(claims, self.key, algorithm=ALG, headers={"kid": self.kid})

    def post(self, name: str, params: dict[str, str]) -> requests.Response:
        """A form POST over mutual TLS, authenticated as the client registered."""
        if self.config["token_endpoint_auth_method"] == "private_key_jwt":
            assertion = self.signed({"sub": self.client_id}, lifetime=60)
            params = {**params, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
        else:  # tls_client_auth, self_signed_tls_client_auth: the certificate is the credential
            params = {"client_id": self.client_id, **params}
        return self.http.post(self.endpoint(name), data=params, cert=self.cert, timeout=10)

    def authenticate(self, login_hint: str, binding_message: str) -> dict[str, Any]:
        claims = {"scope": "openid", "login_hint": login_hint, "binding_message": binding_message}
        response = self.post("backchannel_authentication_endpoint", {"request": self.signed(claims)})
        if response.status_code != 200:
            raise Failed(f"backchannel request refused: {response.status_code} {response.text}")
        return response.json()

    def poll(self, auth_req_id: str, interval: int, expires_in: int) -> dict[str, Any]:
        deadline = time.monotonic() + expires_in
        while time.monotonic() < deadline:
            time.sleep(interval)
            response = self.post("token_endpoint", {"grant_type": CIBA_GRANT, "auth_req_id": auth_req_id})
            body = response.json()
            if response.status_code == 200:
                return body
            if body.get("error") == "authorization_pending":
                continue
            if body.get("error") == "slow_down":  # CIBA §11: wait 5 s longer from now on
                interval += 5
                continue
            raise Failed(f"token endpoint: {response.status_code} {body}")
        raise Failed("the request expired before the user decided")

    def verify_id_token(self, id_token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(id_token)
        if header.get("alg") != ALG:
            raise Failed(f"ID token signed with {header.get('alg')}, not {ALG}")
        keys = self.http.get(self.meta["jwks_uri"], timeout=10).json()["keys"]
        jwk = next((k for k in keys if k.get("kid") == header.get("kid")), None)
        if jwk is None:
            raise Failed(f"ID token kid {header.get('kid')!r} is not in the server's JWKS")
        key = jwt.PyJWK(jwk, algorithm=ALG)
        return jwt.decode(id_token, key, algorithms=[ALG], audience=self.client_id, issuer=self.issuer)

    def userinfo(self, tokens: dict[str, Any], with_certificate: bool) -> requests.Response:
        headers = {"Authorization": f"{tokens['token_type']} {tokens['access_token']}"}
        cert = self.cert if with_certificate else None
        return self.http.get(self.endpoint("userinfo_endpoint"), headers=headers, cert=cert, timeout=10)


def run(args: argparse.Namespace) -> None:
    client = FapiClient(Path(args.dir), args.server, args.ca)
    method = client.config["token_endpoint_auth_method"]
    print(f"client {client.client_id} ({method}), issuer {client.issuer}")
    message = args.binding_message or f"Pay EUR 12.50, ref {secrets.token_hex(2).upper()}"
    started = client.authenticate(args.login_hint, message)
    auth_req_id, interval = started["auth_req_id"], int(started.get("interval", 5))
    print(f"auth_req_id: {auth_req_id}", flush=True)
    print(f'binding message: "{message}" (compare it on {args.login_hint}\'s device)')
    print(f"polling every {interval} s, for up to {started['expires_in']} s ...", flush=True)
    tokens = client.poll(auth_req_id, interval, int(started["expires_in"]))
    claims = client.verify_id_token(tokens["id_token"])
    kinds = ", ".join(kind for kind in ("access_token", "id_token", "refresh_token") if kind in tokens)
    print(f"tokens: {kinds} (token_type {tokens['token_type']}, scope {tokens.get('scope')!r})")
    print(f"ID token: PS256 signature, aud and iss verified; sub={claims['sub']} iss={claims['iss']}")
    with_cert, without = client.userinfo(tokens, True), client.userinfo(tokens, False)
    print(f"userinfo with the client certificate: {with_cert.status_code} {with_cert.text}")
    print(f"userinfo without it: {without.status_code} (401 expected: the token is bound to the certificate)")
    if with_cert.status_code != 200 or without.status_code != 401:
        raise Failed("userinfo: expected 200 with the certificate and 401 without it")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="where ciba_demo_data --fapi wrote the credentials")
    parser.add_argument("--server", required=True, help="the TLS terminator, e.g. https://localhost:8443")
    parser.add_argument("--ca", required=True, help="the CA file that verifies the server's certificate")
    parser.add_argument("--login-hint", default="alice", help="the user to ask (default: alice)")
    parser.add_argument("--binding-message", default="", help="shown on both devices (default: made up)")
    try:
        run(parser.parse_args(argv))
    except (Failed, requests.RequestException, jwt.InvalidTokenError, KeyError, ValueError) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
