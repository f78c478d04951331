"""The consent and device APIs, fuzzed from their own OpenAPI schema: no request is a 5xx.

Schemathesis generates requests that follow the schema and requests that break it, for every
operation drf-spectacular documents under ``/o/ciba/`` (the backchannel endpoint has its own
fuzzer in ``test_fuzz_parameters``; automated approval is a conformance-run switch). They go
to the Django app in-process, as the user's device app: a bearer token carrying the consent
scope, so that they get past authentication to the parsers, serializers and services. Every
approval and denial names a real pending request of the user's, and about half of the other
requests that name a request, a device or a passkey name a real one, so that approving,
denying, reading, renaming and removing run for real rather than stopping at a 404.
"""

import uuid

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from ciba import services
from ciba.models import Device, Passkey
from tests.protocol import consent_bearer

APP = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", APP).include(
    path_regex=r"^/o/ciba/(requests|devices|passkeys|user-code|login-hint-token)/"
)


@pytest.fixture(autouse=True)
def connections_kept_open():
    """The WSGI handler closes database connections around each request, which would end the
    test's transaction (PostgreSQL); Django's test client leaves them open the same way."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def device_app(alice, make_client, no_user_limits, settings):
    """What the fuzzer's requests name: the user's token, a client with requests to decide; and
    "show my code" on, so that its endpoint is fuzzed past its 404."""
    settings.CIBA = {**settings.CIBA, "LOGIN_HINT_TOKEN_ISSUANCE": True}
    client, _ = make_client("poll")
    return {"headers": _as_headers(consent_bearer(alice)), "user": alice, "client": client}


@schema.parametrize()
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.django_db
def test_no_request_to_the_consent_and_device_apis_is_a_server_error(case, device_app):
    parameters = case.path_parameters or {}
    if "auth_req_id" in parameters and (case.method == "POST" or _heads(parameters["auth_req_id"])):
        parameters["auth_req_id"] = _pending(device_app).auth_req_id
    if "device_id" in parameters and _heads(parameters["device_id"]):
        device = Device.objects.create(user=device_app["user"], kind="fcm", token="fuzz")
        parameters["device_id"] = str(device.public_id)
    if "passkey_id" in parameters and _heads(parameters["passkey_id"]):
        passkey = Passkey.objects.create(
            user=device_app["user"], credential_id=uuid.uuid4().hex, public_key=b"", user_handle="aGFuZGxl"
        )
        parameters["passkey_id"] = str(passkey.pk)
    case.call_and_validate(headers=device_app["headers"], checks=[not_a_server_error])


def _pending(device_app):
    # A fuzzed report may have blocked the client ("I did not ask for this"): lift it, so each
    # case gets a request to act on.
    services.unblock(device_app["user"], device_app["client"])
    return services.create_request(
        expires_in=300,
        client=device_app["client"],
        user=device_app["user"],
        hint_kind="login_hint",
        scope="openid profile email",
        interval=5,
    )


def _heads(generated) -> bool:
    """A coin the generated value tosses: Hypothesis shrinks and replays it like any other."""
    return len(str(generated)) % 2 == 0


def _as_headers(meta: dict) -> dict:
    """Django test-client ``HTTP_*`` keys as HTTP header names."""
    return {key.removeprefix("HTTP_").replace("_", "-").title(): value for key, value in meta.items()}
