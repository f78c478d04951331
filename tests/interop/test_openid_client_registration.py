"""openid-client's own dynamic client registration (``dynamicClientRegistration``, RFC 7591)
against the example server, then CIBA with the client it registered.

The operator issues an initial access token (``manage.py ciba_initial_access_token``); the
relying party (``tests/interop/js/register.mjs``) knows only the issuer and that token. It
registers a poll-mode CIBA client at the discovered ``registration_endpoint``, runs the flow
(alice approves on her phone, the consent API), refreshes, asks userinfo, and deletes its
registration over RFC 7592; after that the server no longer knows it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.interop.conftest import binding_message, node_command
from tests.interop.harness import Site
from tests.interop.test_openid_client import SCOPE, assert_alice


def test_openid_client_registers_itself_and_runs_poll_mode(site: Site, node: Path, relying_party):
    printed = site.manage("ciba_initial_access_token", "openid-client interop", "--uses", "1", "--json")
    token = json.loads(printed.strip().splitlines()[-1])["initial_access_token"]
    env = {"INITIAL_ACCESS_TOKEN": token, "SCOPE": SCOPE, "BINDING_MESSAGE": binding_message("DCR")}

    result = relying_party(site, node_command("register.mjs"), env)

    assert_alice(result, site)
    registered = result["registered"]
    assert registered["client_name"] == "openid-client kiosk"
    assert registered["grant_types"] == ["urn:openid:params:grant-type:ciba", "refresh_token"]
    assert registered["backchannel_token_delivery_mode"] == "poll"
    assert registered["client_secret_expires_at"] == 0
    assert registered["registration_client_uri"] == f"{site.issuer}/register/{result['client_id']}/"
    assert result["refresh_token"] is True and result["refreshed"]["token_type"].lower() == "bearer"
    assert result["deleted"] == 204
    assert result["afterwards"] == "invalid_client"
