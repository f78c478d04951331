"""Signals fired by ``ciba.services`` after a request changes state (and the change committed).

Receivers run after the transaction commits, so they never see a state that is rolled back,
and an exception in a receiver cannot undo a decision.
"""

from django.dispatch import Signal

#: A client started a CIBA request.
#: provides args: request (ciba.AuthenticationRequest)
auth_request_created = Signal()

#: The user approved a request.
#: provides args: request, user (who decided)
auth_request_approved = Signal()

#: The user denied a request.
#: provides args: request, user (who decided)
auth_request_denied = Signal()

#: A request passed expires_at undecided (or decided but never collected) and was marked expired.
#: provides args: request
auth_request_expired = Signal()

#: A pending request was withdrawn: by its client (``reason`` "client") or superseded by a
#: newer request from it at the user's cap (``reason`` "superseded").
#: provides args: request, reason
auth_request_cancelled = Signal()

#: The user said they did not ask for a request (it was denied; ``blocked``: the user also
#: blocked its client from asking again), so a site can alert its fraud team.
#: provides args: request, user, blocked
auth_request_reported = Signal()

#: Tokens were issued for a request (handed out once, at the token endpoint or by push).
#: provides args: request
tokens_issued = Signal()

#: A ping or push callback reached the client's notification endpoint.
#: provides args: request, delivery (ciba.CallbackDelivery)
client_notified = Signal()

#: A ping or push callback failed for good (a final HTTP error, or retries exhausted).
#: provides args: request, delivery
client_notification_failed = Signal()

#: A passkey's sign count did not increase: the credential may have been cloned. The passkey
#: is disabled before this is sent.
#: provides args: passkey, user, sign_count (received), stored_sign_count
passkey_clone_suspected = Signal()

#: A user enrolled a passkey.
#: provides args: passkey, user
passkey_enrolled = Signal()

#: A user removed a passkey.
#: provides args: passkey, user
passkey_removed = Signal()
