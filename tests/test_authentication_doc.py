"""What docs/authentication.md tells an auditor works as written: its re-verification snippet,
with py_webauthn alone, accepts the evidence of a real passkey approval over the transaction
rebuilt from the decided request as the page says, and refuses any other transaction or any
changed byte of the signed client data."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.forms.models import model_to_dict
from django.test import Client
from webauthn.helpers.exceptions import InvalidAuthenticationResponse

from ciba import authorization_details as rar
from ciba import services
from ciba.models import ApprovalEvidence, Passkey
from tests.protocol import consent_bearer
from tests.webauthn_authenticator import SoftAuthenticator

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "authentication.md"
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02100100109307118603"},
}


def documented(function: str) -> Any:
    """``function`` from the page's Python block that defines it, run as a reader would."""
    blocks = re.findall(r"```python\n(.*?)```", DOCUMENT.read_text(), re.S)
    [block] = [b for b in blocks if f"def {function}(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, f"{DOCUMENT}:{function}", "exec"), namespace)  # noqa: S102 - our own document
    return namespace[function]


def post(api: Client, path: str, body: Any) -> Any:
    return api.post(path, json.dumps(body), content_type="application/json")


def approved_with_a_passkey(alice: Any, make_client: Any, body: dict[str, Any]) -> Any:
    """A payment request approved through the consent API with a passkey, ``body`` the
    approval's transaction fields besides the displayed digest."""
    app, _ = make_client("poll", approval_level="passkey")
    ar = services.create_request(
        expires_in=300,
        client=app,
        user=alice,
        hint_kind="login_hint",
        scope="profile openid payments",
        binding_message="K7QP",
        interval=5,
        authorization_details=rar.validate(rar.parse([PAYMENT]), allowed_types=["payment_initiation"]),
    )
    api = Client(**consent_bearer(alice))
    phone = SoftAuthenticator()
    options = post(api, "/o/ciba/passkeys/registration-options/", {}).json()
    assert post(api, "/o/ciba/passkeys/", {"credential": phone.create(options)}).status_code == 201
    shown = api.get(f"/o/ciba/requests/{ar.auth_req_id}/").json()["authorization_details_digest"]
    body = {**body, "displayed_details_hash": shown}
    options = post(api, f"/o/ciba/requests/{ar.auth_req_id}/authentication-options/", body).json()
    credential = phone.get(options)
    response = post(
        api,
        f"/o/ciba/requests/{ar.auth_req_id}/approve/",
        {**body, "authentication": {"method": "passkey", "credential": credential}},
    )
    assert response.status_code == 200, response.content
    ar.refresh_from_db()
    return ar


def rebuilt(request: Any, *, narrowed: bool) -> dict[str, Any]:
    """The transaction, rebuilt from the decided request as the page says."""
    return {
        "auth_req_id": request.auth_req_id,
        "binding_message": request.binding_message or None,
        "scope": " ".join(sorted(request.granted_scope.split())),
        "authorization_details": request.approved_authorization_details if narrowed else None,
        "displayed_details_hash": request.displayed_details_hash or None,
    }


def lower_amount() -> dict[str, Any]:
    detail = copy.deepcopy(PAYMENT)
    detail["instructedAmount"]["amount"] = "100.00"
    return detail


@pytest.mark.parametrize(
    ("body", "narrowed"),
    [({}, False), ({"scopes": ["payments", "openid"], "authorization_details": [lower_amount()]}, True)],
    ids=["as requested", "a lower amount and fewer scopes"],
)
def test_the_documented_snippet_reverifies_a_passkey_approval(alice, make_client, body, narrowed):
    request = approved_with_a_passkey(alice, make_client, body)
    evidence = model_to_dict(ApprovalEvidence.objects.get(auth_request=request))
    public_key = bytes(Passkey.objects.get(pk=evidence["passkey"]).public_key)
    reverify = documented("reverify")
    reverify(evidence, public_key, rebuilt(request, narrowed=narrowed))
    with pytest.raises(ValueError, match="not made for this transaction"):
        reverify(evidence, public_key, {**rebuilt(request, narrowed=narrowed), "scope": "openid"})
    with pytest.raises(ValueError, match="not made for this transaction"):
        reverify(evidence, public_key, rebuilt(request, narrowed=not narrowed))
    # The same JSON with one more space: every member unchanged, the signed bytes not.
    changed = {**evidence, "client_data_json": evidence["client_data_json"].replace("{", "{ ", 1)}
    with pytest.raises(InvalidAuthenticationResponse, match="signature"):
        reverify(changed, public_key, rebuilt(request, narrowed=narrowed))
