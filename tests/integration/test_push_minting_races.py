"""Two attempts minting one push callback's tokens at once, on PostgreSQL (issue 29).

Minting takes no lock on the callback row before it: the request's conditional ``UPDATE`` to
issued is the gate, and the body is stored only where none is. What the client may see does
not change: one set of tokens per request, and every attempt sends the same body.
"""

import threading
from unittest import mock

import pytest
from django.db import connection

from ciba import tokens
from ciba.callbacks import outbox
from ciba.callbacks.sealing import seal, unseal
from ciba.models import AuthenticationRequest, CallbackDelivery
from ciba.statements import chain
from tests import test_push_minting as minting

queued_push, TOKEN_MODELS = minting.queued_push, minting.TOKEN_MODELS

real_mint = tokens.mint_for_push
real_send = chain.Chain.send


def loaded(pk: int) -> CallbackDelivery:
    return CallbackDelivery.objects.select_related("request__client", "request__user").get(pk=pk)


def in_thread(target, *args) -> threading.Thread:
    def run() -> None:
        try:
            target(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_an_attempt_that_meets_another_mid_mint_waits_and_sends_the_same_tokens(queued_push):
    minting, second_started = threading.Event(), threading.Event()
    bodies: dict[str, dict] = {}
    first_thread: list[threading.Thread] = []

    def slow_send(rows, gate, then):
        # The first attempt has issued the request and written its rows; its transaction is open.
        outcome = real_send(rows, gate, then)
        if threading.current_thread() in first_thread:
            minting.set()
            second_started.wait(10)
            threading.Event().wait(0.3)  # the second attempt's UPDATE is now waiting for this transaction
        return outcome

    def first() -> None:
        first_thread.append(threading.current_thread())
        bodies["first"] = outbox.payload(loaded(queued_push.pk))

    def second() -> None:
        minting.wait(10)
        delivery = loaded(queued_push.pk)  # read before the first stored its body, as a racer would
        second_started.set()
        bodies["second"] = outbox.payload(delivery)

    with mock.patch.object(chain.Chain, "send", slow_send):
        threads = [in_thread(first), in_thread(second)]
        for thread in threads:
            thread.join(30)
    assert bodies["first"] == bodies["second"] and "access_token" in bodies["first"]
    assert [model.objects.count() for model in TOKEN_MODELS] == [1, 1, 1, 1]
    assert unseal(CallbackDelivery.objects.get().payload) == bodies["first"]
    assert AuthenticationRequest.objects.get().state == "issued"


@pytest.mark.django_db(transaction=True)
def test_a_body_stored_meanwhile_is_sent_and_the_tokens_minted_for_nothing_are_rolled_back(queued_push):
    """Another attempt's ``transaction_failed`` (written outside its rolled-back transaction)
    lands while this one mints: the client gets that one body, and no token of ours survives."""
    failed = {"error": "transaction_failed", "auth_req_id": queued_push.request.auth_req_id}

    def mint_while_another_stores(ar, rows=None):
        # The other attempt's write, on a connection of its own, committed before ours.
        in_thread(
            lambda: CallbackDelivery.objects.filter(pk=queued_push.pk).update(payload=seal(failed))
        ).join(10)
        return real_mint(ar, rows)

    with mock.patch("ciba.callbacks.outbox.mint_for_push", side_effect=mint_while_another_stores):
        body = outbox.payload(loaded(queued_push.pk))
    assert body == failed
    assert [model.objects.count() for model in TOKEN_MODELS] == [0, 0, 0, 0]
    assert AuthenticationRequest.objects.get().state == "approved"  # our issuing rolled back with them
