"""The callback outbox: one row per ping or push a client must receive (CIBA §10.2, §10.3, §12)."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .authentication_request import AuthenticationRequest
from .transitions import CompiledTransitions


class CallbackDeliveryQuerySet(models.QuerySet):
    def transition(self, pk: int, to: str, **fields: Any) -> bool:
        """Move one row to state ``to`` with a single conditional UPDATE (``TRANSITIONS``)."""
        return _STATES.apply(self, pk, to, **fields) == 1


class CallbackDelivery(models.Model):
    """A callback to a client's notification endpoint, written in the same transaction as the
    state change that calls for it, so it survives a broker outage or a killed worker.

    Workers claim a row with a conditional UPDATE that sets ``lease_until`` (a worker that dies
    mid-delivery loses its lease, and the sweeper hands the row to another), so two workers
    never send the same row at once. Push token payloads are minted once and stored encrypted
    (``payload``), so a retry re-sends exactly the same tokens.
    """

    class Kind(models.TextChoices):
        PING = "ping", _("Ping (§10.2)")
        PUSH_TOKENS = "push_tokens", _("Push: tokens (§10.3)")
        PUSH_ERROR = "push_error", _("Push: error (§12)")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Failed")

    #: For each target state, the states it may be reached from: delivery and failure end a
    #: pending row; an operator may hand a failed row back to the workers.
    TRANSITIONS: dict[str, frozenset[str]] = {
        State.DELIVERED: frozenset({State.PENDING}),
        State.FAILED: frozenset({State.PENDING}),
        State.PENDING: frozenset({State.FAILED}),
    }

    id = models.BigAutoField(primary_key=True)
    request = models.ForeignKey(
        AuthenticationRequest, on_delete=models.CASCADE, related_name="callbacks", verbose_name=_("request")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    error_code = models.CharField(_("push error code"), max_length=32, blank=True)
    payload = models.BinaryField(_("encrypted payload"), null=True, blank=True, editable=False)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_status = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    lease_until = models.DateTimeField(_("leased until"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    objects = CallbackDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = _("CIBA client callback")
        verbose_name_plural = _("CIBA client callbacks")
        constraints = [
            # One callback of each kind per request: a decision is announced once.
            models.UniqueConstraint(fields=["request", "kind"], name="ciba_callback_once_per_kind"),
        ]
        indexes = [
            # The sweeper looks for pending rows that are due.
            models.Index(fields=["state", "next_attempt_at"], name="ciba_callback_due"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.request} ({self.state})"


#: The row's state transitions, each ``UPDATE`` compiled once per target (a callback recorded
#: right after it was sent: ``transitions.CompiledTransitions``).
_STATES = CompiledTransitions(CallbackDelivery, "state", CallbackDelivery.TRANSITIONS)
