"""The ``ciba_mode=ping`` modules: how the server treats the client's notification endpoint."""

from __future__ import annotations

import pytest

from ciba.tasks import sweep_callbacks


@pytest.fixture
def ping_suite(suite_clients, alice):
    return suite_clients("ping")[0]


def test_fapi_ciba_id1_ping_backchannel_notification_endpoint_response_has_body(ping_suite):
    """The client answers 200 with a body; the body is ignored and the flow completes."""
    ping_suite.recorder.statuses.append(200)
    auth_req_id = ping_suite.start()
    ping_suite.automated_approval(auth_req_id)
    ping_suite.tokens(auth_req_id)


@pytest.mark.parametrize("status", [401, 403])
def test_fapi_ciba_id1_ping_backchannel_notification_endpoint_response_4xx(ping_suite, status):
    """``...-response-401`` and ``...-response-403``: the client still collects its tokens."""
    ping_suite.recorder.statuses.append(status)
    auth_req_id = ping_suite.start()
    ping_suite.automated_approval(auth_req_id)
    ping_suite.tokens(auth_req_id)


def test_fapi_ciba_id1_ping_with_mtls_ciba_notification_endpoint_response_401_and_require_server_does_not_retry(  # noqa: E501 - the suite's name
    ping_suite,
):
    """After a 401 the server must not call the endpoint again (the suite fails on a second call)."""
    ping_suite.recorder.statuses.append(401)
    auth_req_id = ping_suite.start()
    ping_suite.automated_approval(auth_req_id)
    sweep_callbacks.apply()  # even a sweep finds nothing owed
    assert len(ping_suite.recorder.received) == 1


def test_fapi_ciba_id1_ping_backchannel_notification_endpoint_return_redirect_request(ping_suite):
    """The client answers 301 to another URL; the server never calls it."""
    ping_suite.recorder.statuses.append(301)
    auth_req_id = ping_suite.start()
    ping_suite.automated_approval(auth_req_id)
    assert [path for path, _, _ in ping_suite.recorder.received] == ["/client1/cb"]
    ping_suite.token_response(ping_suite.token(auth_req_id), auth_req_id)
