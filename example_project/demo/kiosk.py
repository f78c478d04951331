"""The checkout kiosk: a CIBA client (consumption device) of the demo server, over HTTP only.

It knows only what any client knows: the issuer URL, its own client credentials and how to
present them (written by ``ciba_demo_data``), and what discovery tells it. Purchases live in
Django's cache, as a kiosk's own short-lived state would.
"""

from __future__ import annotations

import json
import secrets
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import jwt
import requests
from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import constant_time_compare
from oauth2_provider.settings import oauth2_settings
from requests.auth import HTTPBasicAuth

GRANT = "urn:openid:params:grant-type:ciba"
PURCHASE_TTL = 3600
FINAL = {"approved", "denied", "expired", "failed", "cancelled"}
#: How the kiosk can present its client secret (RFC 6749 §2.3.1; OpenID Connect Core §9).
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
#: How each delivery mode brings the outcome to the kiosk, as the kiosk page says it.
DELIVERY = {
    "poll": "the kiosk asks the token endpoint until the shopper decides",
    "ping": "the server calls the kiosk back, then the kiosk fetches the tokens",
    "push": "the server sends the tokens to the kiosk",
}
CANCELLED = (
    "Cancelled: the kiosk withdrew the request at the bank, and the customer's phone no longer shows it."
)
#: When the bank did not withdraw it (no cancel endpoint, already decided, unreachable): the
#: kiosk stops waiting all the same.
NOT_WITHDRAWN = (
    "Cancelled here: the kiosk stopped waiting and will ignore an answer from the phone. The bank "
    "did not withdraw the request ({reason})."
)
#: Where the server advertises its cancel endpoint (an extension of django-ciba: CIBA Core 1.0
#: gives a client no way to withdraw a request).
CANCEL_ENDPOINT = "backchannel_authentication_cancel_endpoint"
#: The longest the kiosk page's status request is held open (seconds), and how often the
#: purchase is re-examined meanwhile.
MAX_WAIT = 20.0
WAIT_STEP = 0.25
#: What the kiosk may charge, in euros.
MIN_AMOUNT, MAX_AMOUNT = Decimal("0.01"), Decimal("10000")
#: Who the shopper pays: the creditor of every payment the kiosk asks to be approved.
PAYEE = "Corner Shop"
PAYEE_IBAN = "DE02100100109307118603"
#: The RFC 9396 type the kiosk's payments are described with, when the server supports it.
PAYMENT_TYPE = "payment_initiation"
#: Errors of the backchannel endpoint a kiosk operator can act on, in plain words. The code
#: stays visible: it is what the operator would search for.
ERROR_SENTENCES = {
    "unknown_user_id": "No customer with that username or email address ({error}).",
    "access_denied": "The bank refused this purchase ({error}).",
}
#: The same for a purchase started with the customer's scanned code (a ``login_hint_token``):
#: the cure is to scan a fresh code, and the code itself is never repeated.
CODE_ERROR_SENTENCES = {
    **ERROR_SENTENCES,
    "unknown_user_id": "The bank knows no active customer for this code ({error}).",
    "expired_login_hint_token": "The customer's code has expired: scan the new one on their phone ({error}).",
    "invalid_request": "The bank refused the customer's code: scan a fresh one ({error}: {description}).",
}
#: The acr the kiosk asks for when the shopper must approve with a passkey: OpenID EAP ACR
#: Values 1.0's phishing-resistant authentication, what django-ciba's passkeys achieve.
PASSKEY_ACR = "phr"
#: What an ID token's ``acr`` says, for the kiosk page (the value itself stays visible).
ACR_MEANINGS = {
    PASSKEY_ACR: "phishing-resistant: a passkey, bound to this bank's site",
    "phrh": "phishing-resistant, with a hardware-protected key",
}
#: What each RFC 8176 ``amr`` value says about how the shopper authenticated.
AMR_MEANINGS = {
    "hwk": "a key that cannot leave its device (device-bound passkey)",
    "swk": "a key that may be synced between devices (synced passkey)",
    "user": "the shopper was present (touched or looked at the device)",
    "mfa": "more than one factor: the passkey and the device's own PIN or biometric",
    "pwd": "the password, re-entered",
    "pin": "a PIN",
    "fpt": "a fingerprint",
    "face": "facial recognition",
    "otp": "a one-time password",
    "sms": "a code sent by SMS",
}


class KioskError(Exception):
    """Something a kiosk operator should read; the message is safe to show."""


def clients() -> dict[str, Any]:
    path = Path(settings.CIBA_DEMO_CLIENTS_FILE)
    if not path.exists():
        raise KioskError("No demo clients yet: run python manage.py ciba_demo_data.")
    return json.loads(path.read_text())["clients"]


def issuer() -> str:
    return oauth2_settings.OIDC_ISS_ENDPOINT.rstrip("/")


def discovery() -> dict[str, Any]:
    document = cache.get("demo:discovery")
    if document is None:
        document = _http().get(f"{issuer()}/.well-known/openid-configuration", timeout=5).json()
        cache.set("demo:discovery", document, 300)
    return document


def start(
    mode: str, login_hint: str, amount: str, require_passkey: bool = False, login_hint_token: str = ""
) -> dict[str, Any]:
    """Start a purchase: a CIBA request whose binding message the shopper compares on the phone.

    The customer is named by exactly one hint (CIBA §7.1): ``login_hint_token`` when the kiosk
    scanned the code the customer's phone shows (a token the bank issued; the kiosk passes it
    on as it is and never shows it), else the typed ``login_hint``, the fallback.
    ``require_passkey`` asks for ``acr_values=phr`` (CIBA §7.1): the bank then makes the shopper
    approve with a passkey, and the ID token's ``acr`` says whether that happened.
    """
    client = clients().get(mode)
    if client is None:
        raise KioskError(f"Unknown delivery mode {mode!r}.")
    method = auth_method(client)
    hint = _hint(login_hint, login_hint_token)
    value = _amount(amount)
    code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(4))
    binding_message = f"Pay EUR {value} at Corner Shop #{code}"
    notification_token = secrets.token_urlsafe(32)
    form = {"scope": "openid profile payments", **hint, "binding_message": binding_message}
    if mode != "poll":
        form["client_notification_token"] = notification_token
    if require_passkey:
        form["acr_values"] = PASSKEY_ACR
    details = payment_details(value, code)
    if details:
        form["authorization_details"] = json.dumps(details)
    response = _post(discovery()["backchannel_authentication_endpoint"], form, client)
    body = response.json()
    if response.status_code != 200:
        raise KioskError(
            _error_sentence(body, CODE_ERROR_SENTENCES if "login_hint_token" in hint else ERROR_SENTENCES)
        )
    purchase = {
        "id": secrets.token_urlsafe(16),
        "mode": mode,
        "delivery": DELIVERY.get(mode, ""),
        "client_id": client["client_id"],
        "token_endpoint_auth_method": method,
        "amount": str(value),
        "payee": PAYEE,
        "binding_message": binding_message,
        "acr_values": form.get("acr_values", ""),
        # How the customer was named, never the hint itself: the scanned token is a credential.
        "hint": "code" if "login_hint_token" in hint else "typed",
        "authorization_details": details,
        "approved_details": None,
        "paid": "",
        "auth_req_id": body["auth_req_id"],
        "expires_at": time.time() + body["expires_in"],
        "interval": body.get("interval", 5),
        "next_poll_at": time.time() + body.get("interval", 5),
        "notification_token": notification_token,
        "status": "pending",
        "detail": "",
        "claims": None,
        "authentication": None,
    }
    _save(purchase)
    cache.set(f"demo:by-req:{purchase['auth_req_id']}", purchase["id"], PURCHASE_TTL)
    return purchase


def _hint(login_hint: str, login_hint_token: str) -> dict[str, str]:
    """The one hint the request carries: the scanned code when there is one, else the typed
    identifier."""
    token = login_hint_token.strip()
    if token:
        return {"login_hint_token": token}
    login_hint = login_hint.strip()
    if not login_hint:
        raise KioskError("Enter the customer's username or email address.")
    return {"login_hint": login_hint}


def payment_details(value: Decimal, code: str) -> list[dict[str, Any]]:
    """The payment itself, for the phone to show and the shopper to approve (RFC 9396 §2).

    The binding message only ties the phone to this till; the ``payment_initiation`` object is
    what the bank shows, what the shopper approves (perhaps for less) and what the token
    response confirms. A server that does not advertise the type gets the binding message
    alone, as before: sending it anyway would be refused with ``invalid_authorization_details``.
    """
    if PAYMENT_TYPE not in discovery().get("authorization_details_types_supported", []):
        return []
    return [
        {
            "type": PAYMENT_TYPE,
            "instructedAmount": {"currency": "EUR", "amount": str(value)},
            "creditorName": PAYEE,
            "creditorAccount": {"iban": PAYEE_IBAN},
            "remittanceInformationUnstructured": f"{PAYEE} #{code}",
        }
    ]


def auth_method(client: dict[str, Any]) -> str:
    """How the kiosk authenticates as ``client``: the method its registration names.

    Credentials files written before the method was recorded are ``client_secret_basic``,
    the registration default (OpenID Connect Dynamic Client Registration §2).
    """
    method = client.get("token_endpoint_auth_method") or "client_secret_basic"
    if method not in SECRET_METHODS:
        raise KioskError(f"The kiosk cannot authenticate with {method}; it presents client secrets only.")
    return method


def cancel(purchase_id: str) -> dict[str, Any] | None:
    """Withdraw a purchase: the kiosk asks the bank to cancel the CIBA request (so the
    customer's phone drops the prompt), and in any case stops waiting and ignores any answer.

    The bank's cancel endpoint is an extension it advertises in discovery, called with the
    kiosk's own client credentials; a bank without one, or a request already decided there,
    leaves the request as it is, and the kiosk says so. A purchase already decided at the
    kiosk keeps its outcome. The cancel is a separate key, written first and once, so that a
    status check under way when it came cannot overwrite it.
    """
    purchase = cache.get(f"demo:purchase:{purchase_id}")
    if purchase is None or purchase["status"] in FINAL:
        return purchase
    cache.set(f"demo:cancelled:{purchase_id}", True, PURCHASE_TTL)
    withdrawn, detail = _withdraw(purchase)
    purchase["withdrawn"] = withdrawn
    return _finish(purchase, "cancelled", detail)


def _withdraw(purchase: dict[str, Any]) -> tuple[bool, str]:
    """Ask the bank to cancel the purchase's request; whether it did, and what to tell the
    cashier."""
    try:
        endpoint = discovery().get(CANCEL_ENDPOINT)
    except requests.RequestException as exc:
        return False, NOT_WITHDRAWN.format(reason=f"the bank could not be reached: {type(exc).__name__}")
    if not endpoint:
        return False, NOT_WITHDRAWN.format(reason="this bank offers no cancel endpoint")
    try:
        response = _post(endpoint, {"auth_req_id": purchase["auth_req_id"]}, clients()[purchase["mode"]])
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        return False, NOT_WITHDRAWN.format(reason=f"the bank could not be reached: {type(exc).__name__}")
    if response.status_code == 200 and isinstance(body, dict) and body.get("state") == "cancelled":
        return True, CANCELLED
    return False, NOT_WITHDRAWN.format(reason=_error_sentence(body if isinstance(body, dict) else {}))


def _amount(amount: str) -> Decimal:
    """The amount, rounded to cents, between ``MIN_AMOUNT`` and ``MAX_AMOUNT``.

    ``Decimal`` also reads ``NaN``, ``Infinity`` and exponents too large to round, and NaN
    answers a comparison by raising, so finiteness and range are checked before anything else.
    """
    try:
        value = Decimal(amount) if len(amount) <= 40 else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise KioskError("Enter an amount such as 12.50.")
    if not MIN_AMOUNT <= value <= MAX_AMOUNT:
        raise KioskError(f"The amount must be between {MIN_AMOUNT} and {MAX_AMOUNT}.")
    return value.quantize(MIN_AMOUNT)


def status(purchase_id: str) -> dict[str, Any] | None:
    """Advance a purchase the way its delivery mode says, and return it."""
    purchase = cache.get(f"demo:purchase:{purchase_id}")
    if purchase is None or purchase["status"] in FINAL:
        return purchase
    if _cancelled(purchase):
        return _finish(purchase, "cancelled", CANCELLED)
    if time.time() > purchase["expires_at"] + 2:
        return _finish(purchase, "expired", "The request expired before the shopper decided.")
    if purchase["mode"] == "push":
        pushed = cache.get(f"demo:push:{purchase['auth_req_id']}")
        if pushed is not None:
            _from_token_response(purchase, 200 if "access_token" in pushed else 400, pushed)
    elif purchase["mode"] == "ping":
        if cache.get(f"demo:ping:{purchase['auth_req_id']}"):
            _poll(purchase)
    elif time.time() >= purchase["next_poll_at"]:
        _poll(purchase)
    if _cancelled(purchase):  # cancelled while this check ran: the kiosk ignores the outcome
        return _finish(purchase, "cancelled", CANCELLED)
    _save(purchase)
    return purchase


def _cancelled(purchase: dict[str, Any]) -> bool:
    return bool(cache.get(f"demo:cancelled:{purchase['id']}"))


def wait_for_decision(purchase_id: str, timeout: float) -> dict[str, Any] | None:
    """``status``, repeated until the purchase is no longer pending or ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        purchase = status(purchase_id)
        if purchase is None or purchase["status"] != "pending" or time.monotonic() >= deadline:
            return purchase
        time.sleep(WAIT_STEP)


def receive_callback(mode: str, authorization: str, body: dict[str, Any]) -> bool:
    """A ping or push from the server; True when it carries this kiosk's bearer token."""
    auth_req_id = body.get("auth_req_id")
    if not isinstance(auth_req_id, str):
        return False
    purchase_id = cache.get(f"demo:by-req:{auth_req_id}")
    purchase = cache.get(f"demo:purchase:{purchase_id}") if purchase_id else None
    if purchase is None or purchase["mode"] != mode:
        return False
    if not constant_time_compare(authorization, f"Bearer {purchase['notification_token']}"):
        return False
    key = "demo:ping:" if mode == "ping" else "demo:push:"
    cache.set(key + purchase["auth_req_id"], body if mode == "push" else True, PURCHASE_TTL)
    return True


def _error_sentence(body: dict[str, Any], sentences: dict[str, str] = ERROR_SENTENCES) -> str:
    error = str(body.get("error") or "error")
    description = body.get("error_description")
    if error in sentences:
        return sentences[error].format(error=error, description=description or "no description")
    return f"{error}: {description}" if description else error


def _poll(purchase: dict[str, Any]) -> None:
    client = clients()[purchase["mode"]]
    response = _post(
        discovery()["token_endpoint"], {"grant_type": GRANT, "auth_req_id": purchase["auth_req_id"]}, client
    )
    _from_token_response(purchase, response.status_code, response.json())


def _post(url: str, form: dict[str, str], client: dict[str, Any]) -> requests.Response:
    """A form POST authenticated as ``client`` with its registered method.

    ``client_secret_basic`` form-encodes the id and secret before Basic encoding them
    (RFC 6749 §2.3.1), which ``requests``' own ``auth=(id, secret)`` leaves out.
    """
    if auth_method(client) == "client_secret_post":
        form = {**form, "client_id": client["client_id"], "client_secret": client["client_secret"]}
        return _http().post(url, data=form, timeout=10)
    basic = HTTPBasicAuth(quote_plus(client["client_id"]), quote_plus(client["client_secret"]))
    return _http().post(url, data=form, auth=basic, timeout=10)


def _from_token_response(purchase: dict[str, Any], status_code: int, body: dict[str, Any]) -> None:
    if status_code == 200:
        try:
            purchase["claims"] = _verify_id_token(body["id_token"], clients()[purchase["mode"]]["client_id"])
        except jwt.PyJWTError as exc:
            _finish(purchase, "failed", f"The ID token did not verify: {exc}")
            return
        purchase["authentication"] = authentication(purchase["claims"])
        approved = body.get("authorization_details")
        purchase["approved_details"] = approved
        purchase["paid"] = _paid(purchase, approved)
        _finish(purchase, "approved", "Approved: paid.")
        return
    error = body.get("error")
    if error == "slow_down":
        purchase["interval"] += 5
    if error in ("authorization_pending", "slow_down"):
        purchase["next_poll_at"] = time.time() + purchase["interval"]
    elif error == "access_denied":
        _finish(purchase, "denied", "The shopper denied the payment.")
    elif error == "expired_token":
        _finish(purchase, "expired", "The request expired before the shopper decided.")
    else:
        _finish(purchase, "failed", f"{error}: {body.get('error_description', '')}")


def authentication(claims: dict[str, Any]) -> dict[str, Any]:
    """How the bank says the shopper authenticated, from the verified ID token: ``acr``
    (OIDC Core §2; empty when none is claimed), the RFC 8176 ``amr`` values and ``auth_time``
    (epoch seconds), each with a sentence for the kiosk page."""
    acr = claims.get("acr") if isinstance(claims.get("acr"), str) else ""
    amr = [value for value in claims.get("amr") or [] if isinstance(value, str)]
    auth_time = claims.get("auth_time")
    return {
        "acr": acr,
        "acr_meaning": ACR_MEANINGS.get(acr, "") if acr else "no acr claimed: a tap in a signed-in session",
        "amr": amr,
        "amr_meanings": [AMR_MEANINGS.get(value, "") for value in amr],
        "auth_time": auth_time if isinstance(auth_time, int) and not isinstance(auth_time, bool) else None,
    }


def _paid(purchase: dict[str, Any], approved: Any) -> str:
    """What the till records as paid: the approved payment, whose amount may be lower than the
    one asked for; empty when the kiosk sent no payment or the answer confirms none."""
    payments = [d for d in approved or [] if isinstance(d, dict) and d.get("type") == PAYMENT_TYPE]
    if not purchase.get("authorization_details") or not payments:
        return ""
    amount = payments[0].get("instructedAmount") or {}
    paid = f"{amount.get('currency', '')} {amount.get('amount', '')}".strip()
    return f"{paid} to {payments[0].get('creditorName', PAYEE)}"


def _verify_id_token(id_token: str, client_id: str) -> dict[str, Any]:
    """What a careful client does: the key from the JWKS by kid, then signature, iss, aud, exp."""
    keys = _http().get(discovery()["jwks_uri"], timeout=5).json()["keys"]
    kid = jwt.get_unverified_header(id_token).get("kid")
    key = next((jwt.PyJWK(k) for k in keys if k.get("kid") == kid), None)
    if key is None:
        raise jwt.InvalidKeyError("no key with the ID token's kid")
    return jwt.decode(id_token, key, algorithms=["RS256"], audience=client_id, issuer=discovery()["issuer"])


def _finish(purchase: dict[str, Any], status_value: str, detail: str) -> dict[str, Any]:
    purchase["status"], purchase["detail"] = status_value, detail
    _save(purchase)
    return purchase


def _save(purchase: dict[str, Any]) -> None:
    cache.set(f"demo:purchase:{purchase['id']}", purchase, PURCHASE_TTL)


def _http() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "ciba-demo-kiosk"
    return session
