"""One CIBA authentication request (an ``auth_req_id``) and its lifecycle."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings

from ..conf import ciba_settings
from .transitions import CompiledTransitions


def generate_auth_req_id() -> str:
    """A URL-safe identifier with ``AUTH_REQ_ID_BYTES`` bytes from ``secrets`` (CIBA §7.3).

    The default 32 bytes give 256 bits; the spec requires at least 128 and recommends 160,
    and ``ciba.E008`` refuses fewer than 20 bytes. The alphabet (``A-Z a-z 0-9 - _``) is a
    subset of the characters §7.3 allows.
    """
    return secrets.token_urlsafe(ciba_settings.AUTH_REQ_ID_BYTES)


def _withdrawal_due(now: datetime) -> Case:
    """The device-notification due time a request leaving ``pending`` gets in the same UPDATE:
    ``now`` when its device was notified (the prompt's withdrawal is owed, ``ciba.device_outbox``),
    else unchanged. Set with the state change itself, so a process that dies right after the
    commit leaves the withdrawal for the sweep rather than losing it."""
    return Case(
        When(
            Q(state=AuthenticationRequest.State.PENDING, device_notification_attempts__gt=0),
            then=Value(now),
        ),
        default=F("device_notification_due_at"),
        output_field=models.DateTimeField(),
    )


def _due_withdrawal(pk: Any, now: datetime) -> dict[str, Any]:
    """``expressions`` of a transition ending the prompt, unless the caller gives its own."""
    return {"device_notification_due_at": _withdrawal_due(now)}


def _past_expiry(rows: models.QuerySet, now: datetime) -> models.QuerySet:
    return rows.filter(expires_at__lte=now)


def _before_expiry(rows: models.QuerySet, now: datetime) -> models.QuerySet:
    return rows.filter(expires_at__gt=now)


def _transition_arguments(to: str, now: datetime | None, expressions: Any) -> dict[str, Any]:
    """What a state transition adds to its fields: the expiry condition, the prompt's
    withdrawal where it ends the prompt, ``updated_at``."""
    now = now or timezone.now()
    expiry = _past_expiry if to == AuthenticationRequest.State.EXPIRED else _before_expiry
    if expressions is None and to in AuthenticationRequest.ENDS_PROMPT:
        expressions = _due_withdrawal
    return {"extra": (expiry, (now,)), "expressions": expressions, "updated_at": now}


class AuthenticationRequestQuerySet(models.QuerySet):
    def transition(
        self, pk: int, to: str, *, now: datetime | None = None, expressions: Any = None, **fields: Any
    ) -> bool:
        """Move one request to state ``to`` with a single conditional UPDATE.

        The UPDATE only matches a row that is in one of the states ``to`` may be reached
        from (and, except for expiry, is not past ``expires_at``), so of two concurrent
        callers exactly one sees ``True``: two polls cannot both issue, and an approval
        racing an expiry cannot both win. Returns whether this caller made the transition.

        ``expressions(pk, now)`` gives columns computed by the UPDATE from the row (a module-level
        function: the statement is compiled once per function); a transition that ends the
        device's prompt defaults to ``_due_withdrawal``.
        """
        changed = _STATES.apply(self, pk, to, **_transition_arguments(to, now, expressions), **fields)
        return changed == 1

    def transition_statement(
        self, pk: int, to: str, *, now: datetime, expressions: Any = None, **fields: Any
    ) -> tuple[str, list[Any]] | None:
        """The SQL and parameters of ``transition``'s UPDATE, for a caller that sends it within
        a statement of its own (the decision and its callback row in one, ``ciba.services``);
        None when ``transition`` would build it with the ORM."""
        return _STATES.statement(self, pk, to, **_transition_arguments(to, now, expressions), **fields)

    def record_notification(self, pk: int, status: str, **fields: Any) -> bool:
        """Move one request's device-notification status to ``status`` (see
        ``NOTIFICATION_TRANSITIONS``); False if a concurrent writer got there first."""
        return _NOTIFICATIONS.apply(self, pk, status, **fields) == 1

    def past_expiry(self, now: datetime | None = None) -> AuthenticationRequestQuerySet:
        """Requests a sweep should mark expired: unfinished and past ``expires_at``."""
        return self.filter(
            state__in=AuthenticationRequest.TRANSITIONS[AuthenticationRequest.State.EXPIRED],
            expires_at__lte=now or timezone.now(),
        )


class AuthenticationRequest(models.Model):
    """A CIBA authentication request from a client about one user.

    Lifecycle (docs/design): ``pending`` → ``approved`` | ``denied`` | ``expired`` |
    ``cancelled`` (withdrawn by the client, or superseded);
    ``approved`` → ``issued`` (tokens handed out once) | ``expired``. ``expires_at`` is
    authoritative: a request past it behaves as expired (see ``effective_state``) whether
    or not a sweep has stored that yet.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        DENIED = "denied", _("Denied")
        EXPIRED = "expired", _("Expired")
        ISSUED = "issued", _("Issued")
        CANCELLED = "cancelled", _("Cancelled")

    #: For each target state, the states it may be reached from.
    TRANSITIONS: dict[str, frozenset[str]] = {
        State.APPROVED: frozenset({State.PENDING}),
        State.DENIED: frozenset({State.PENDING}),
        State.EXPIRED: frozenset({State.PENDING, State.APPROVED}),
        State.ISSUED: frozenset({State.APPROVED}),
        # Withdrawn before anyone decided: by its client (the cancel endpoint) or superseded
        # by a newer request from it when the user's cap was reached (ciba.user_limits).
        State.CANCELLED: frozenset({State.PENDING}),
    }

    #: States whose arrival from ``pending`` makes the device's prompt dead (it is withdrawn).
    ENDS_PROMPT: frozenset[str] = frozenset({State.APPROVED, State.DENIED, State.EXPIRED, State.CANCELLED})

    #: States a request never leaves (what ``expire_ciba_requests`` may delete).
    FINISHED: frozenset[str] = frozenset({State.DENIED, State.EXPIRED, State.ISSUED, State.CANCELLED})

    class CancelReason(models.TextChoices):
        CLIENT = "client", _("Cancelled by the client")
        SUPERSEDED = "superseded", _("Superseded by a newer request")

    class NotificationStatus(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RETRYING = "retrying", _("Retrying")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    #: Device-notification status changes, like ``TRANSITIONS``: a notification that was sent
    #: stays sent (a late duplicate run cannot mark it failed) until an operator re-sends it.
    NOTIFICATION_TRANSITIONS: dict[str, frozenset[str]] = {
        NotificationStatus.SENT: frozenset({NotificationStatus.QUEUED, NotificationStatus.RETRYING}),
        NotificationStatus.RETRYING: frozenset({NotificationStatus.QUEUED, NotificationStatus.RETRYING}),
        NotificationStatus.FAILED: frozenset({NotificationStatus.QUEUED, NotificationStatus.RETRYING}),
        NotificationStatus.QUEUED: frozenset(NotificationStatus.values),
    }

    class HintKind(models.TextChoices):
        LOGIN_HINT = "login_hint", "login_hint"
        LOGIN_HINT_TOKEN = "login_hint_token", "login_hint_token"
        ID_TOKEN_HINT = "id_token_hint", "id_token_hint"

    id = models.BigAutoField(primary_key=True)
    auth_req_id = models.CharField(
        _("auth_req_id"), max_length=255, unique=True, default=generate_auth_req_id, editable=False
    )
    client = models.ForeignKey(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_requests",
        verbose_name=_("client"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="ciba_requests",
        verbose_name=_("user"),
        # No index of its own: ``ciba_req_user_state_exp`` starts with the user and serves every
        # lookup by user (cascades included); one index fewer to write on every INSERT and on
        # every UPDATE that cannot stay HOT (migration 0023).
        db_index=False,
    )
    hint_kind = models.CharField(_("hint kind"), max_length=16, choices=HintKind.choices)
    scope = models.TextField(_("requested scope"))
    acr_values = models.TextField(_("requested ACR values"), blank=True)
    binding_message = models.TextField(_("binding message"), blank=True)
    client_notification_token = models.CharField(_("client notification token"), max_length=1024, blank=True)
    requested_expiry = models.PositiveIntegerField(_("requested expiry (s)"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"))
    interval = models.PositiveIntegerField(_("poll interval (s)"))
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.PENDING)
    granted_scope = models.TextField(_("granted scope"), blank=True)
    acr_essential = models.BooleanField(
        _("ACR essential"),
        default=False,
        help_text=_("The client asked for one of acr_values as an essential claim: nothing weaker approves."),
    )
    # The key or certificate the client declared with this request (RFC 9449 §10, RFC 8705 §3):
    # push tokens are bound to it, and a DPoP key holds for the token request too.
    dpop_jkt = models.CharField(_("DPoP key thumbprint"), max_length=64, blank=True)
    cert_x5t_s256 = models.CharField(_("client certificate thumbprint"), max_length=64, blank=True)
    acr = models.CharField(_("achieved ACR"), max_length=255, blank=True)
    amr = models.CharField(
        _("authentication methods"),
        max_length=255,
        blank=True,
        help_text=_("RFC 8176 values, space-separated."),
    )
    # --- what the client asked for beyond scope (RFC 9396, OIDC Core §5.5, CIBA §7.1, RFC 8707) ---
    authorization_details = models.JSONField(
        _("requested authorization details"),
        default=list,
        blank=True,
        help_text=_("RFC 9396: the details the client asked the user to approve, as validated."),
    )
    approved_authorization_details = models.JSONField(
        _("approved authorization details"),
        null=True,
        blank=True,
        help_text=_("What the user approved: the requested details or, where a type allows it, fewer."),
    )
    displayed_details_hash = models.CharField(
        _("hash of what was displayed"),
        max_length=64,
        blank=True,
        help_text=_("SHA-256 of exactly what the authentication device showed when the user decided."),
    )
    claims = models.JSONField(
        _("requested claims"), null=True, blank=True, help_text=_("OIDC Core §5.5: the claims request.")
    )
    request_context = models.JSONField(
        _("request context"), null=True, blank=True, help_text=_("CIBA §7.1: the client's request_context.")
    )
    resource = models.JSONField(
        _("resource indicators"),
        default=list,
        blank=True,
        help_text=_("RFC 8707: the resources the tokens are for."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    cancel_reason = models.CharField(
        _("cancel reason"), max_length=16, choices=CancelReason.choices, blank=True
    )
    reported_at = models.DateTimeField(
        _("reported by the user at"),
        null=True,
        blank=True,
        help_text=_("The user said they did not ask for this request (and denied it)."),
    )
    auth_time = models.DateTimeField(
        _("authentication time"),
        null=True,
        blank=True,
        help_text=_(
            "When the user authenticated for the approval (OIDC Core auth_time): the passkey "
            "assertion or password re-entry, or the sign-in of the session that tapped."
        ),
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    issued_at = models.DateTimeField(_("issued at"), null=True, blank=True)
    last_polled_at = models.DateTimeField(_("last polled at"), null=True, blank=True)
    # The device notification's outcome, so a failure is visible (API, admin) without logs.
    device_notification_status = models.CharField(
        _("device notification"),
        max_length=16,
        choices=NotificationStatus.choices,
        default=NotificationStatus.QUEUED,
    )
    device_notification_attempts = models.PositiveSmallIntegerField(_("notification attempts"), default=0)
    device_notification_error = models.TextField(_("last notification error"), blank=True)
    # The device notification is a durable outbox entry, like a callback: a worker claims it
    # with a lease; a sweep hands it to another worker when it is due and nobody holds it.
    device_notification_id = models.CharField(
        _("notification id"), max_length=32, blank=True, help_text=_("Stays the same across retries.")
    )
    device_notification_due_at = models.DateTimeField(_("notification due at"), null=True, blank=True)
    device_notification_lease_until = models.DateTimeField(
        _("notification leased until"), null=True, blank=True
    )
    device_notification_retry = models.JSONField(
        _("notifiers to retry"), null=True, blank=True, help_text=_("Dotted paths; empty: all.")
    )
    device_notified_at = models.DateTimeField(_("device notified at"), null=True, blank=True)

    objects = AuthenticationRequestQuerySet.as_manager()

    class Meta:
        verbose_name = _("CIBA authentication request")
        verbose_name_plural = _("CIBA authentication requests")
        indexes = [
            # The consent API lists a user's pending, unexpired requests, newest first.
            models.Index(fields=["user", "state", "expires_at"], name="ciba_req_user_state_exp"),
            # The expiry sweep finds unfinished requests past expires_at.
            models.Index(fields=["state", "expires_at"], name="ciba_req_state_exp"),
            # The outbox sweep finds device notifications that are due.
            models.Index(
                fields=["device_notification_status", "device_notification_due_at"],
                name="ciba_req_notify_due",
            ),
        ]

    def __str__(self) -> str:
        # Never the auth_req_id itself: __str__ ends up in the admin, logs and error pages.
        return f"CIBA request …{self.auth_req_id[-4:]} ({self.state})"

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at <= (now or timezone.now())

    def effective_state(self, now: datetime | None = None) -> str:
        """The state clients and users see: an unfinished request past ``expires_at`` is expired."""
        if self.state in self.TRANSITIONS[self.State.EXPIRED] and self.is_expired(now):
            return self.State.EXPIRED
        return self.state

    def expires_in(self, now: datetime | None = None) -> int:
        """Whole seconds left, as the ``expires_in`` of CIBA §7.3 (never negative)."""
        remaining = (self.expires_at - (now or timezone.now())).total_seconds()
        return max(0, int(remaining))

    def transition_to(
        self, to: str, *, now: datetime | None = None, expressions: Any = None, **fields: Any
    ) -> bool:
        """Conditionally move this request to ``to``; on success, mirror the change locally
        (``fields``; what ``expressions`` computed is known only to the row)."""
        now = now or timezone.now()
        changed = type(self).objects.transition(self.pk, to, now=now, expressions=expressions, **fields)
        if changed:
            self.transitioned(to, now=now, **fields)
        return changed

    def transitioned(self, to: str, *, now: datetime, **fields: Any) -> None:
        """Mirror locally a transition made to the row (``fields`` as assigned)."""
        self.state = to
        self.updated_at = now
        for name, value in fields.items():
            setattr(self, name, value)


#: The request's two status columns' transitions, each ``UPDATE`` compiled once per target
#: (``transitions.CompiledTransitions``).
_STATES = CompiledTransitions(AuthenticationRequest, "state", AuthenticationRequest.TRANSITIONS)
_NOTIFICATIONS = CompiledTransitions(
    AuthenticationRequest, "device_notification_status", AuthenticationRequest.NOTIFICATION_TRANSITIONS
)
