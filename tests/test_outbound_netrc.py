"""Outbound calls never carry the operator's ``~/.netrc`` credentials to a client's endpoint.

requests reads ``~/.netrc`` for a call that brings no authentication of its own, and an entry
for the endpoint's host replaces the request's ``Authorization`` header. A client chooses its
notification endpoint's host: whatever the operator's netrc holds for that host must not reach
it, and the client's own ``client_notification_token`` must."""

from __future__ import annotations

from typing import Any

from ciba.outbound.http import session


def netrc_for_loopback(tmp_path: Any, monkeypatch: Any) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login operator password operator-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))


def test_a_callback_keeps_its_bearer_token_whatever_netrc_holds_for_the_host(recorder, tmp_path, monkeypatch):
    netrc_for_loopback(tmp_path, monkeypatch)
    with session(allow_private=True) as http:
        http.post(recorder.url("/cb"), json={"auth_req_id": "x"}, headers={"Authorization": "Bearer nt-1"})
    [(_, headers, _)] = recorder.received
    assert headers["Authorization"] == "Bearer nt-1"


def test_a_call_without_authorization_sends_none_whatever_netrc_holds(recorder, tmp_path, monkeypatch):
    netrc_for_loopback(tmp_path, monkeypatch)
    with session(allow_private=True) as http:
        http.post(recorder.url("/plain"), data=b"{}")
    [(_, headers, _)] = recorder.received
    assert "Authorization" not in headers
