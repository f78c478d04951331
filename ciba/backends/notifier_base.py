"""The notifier contract: telling the user's authentication device that a request awaits a
decision (CIBA §8 leaves how to the OP).

A notifier is a class named in ``CIBA["NOTIFIER_CLASSES"]``; each runs after the request is
committed (``ciba.device_outbox``), in a Celery worker. Its one entry point is
``send(*, auth_request, devices) -> ciba.outbound.Outcome``. Subclasses of ``BaseNotifier``
usually implement only ``send_one``: the base picks the targets, loops, and combines the
failures once (the notification counts as sent when any target was reached). A failure worth
retrying is retried with backoff; a notification failure never fails or loses the CIBA
request: the user can still find it in the consent API.

Once the request stops being actionable (approved or denied on any device, expired, cancelled
by its client, superseded) the same notifiers withdraw the prompt they showed:
``withdraw(*, auth_request, devices) -> Outcome``, through ``withdraw_one`` and
``prepare_withdrawal`` as ``send`` goes through ``send_one`` and ``prepare``. A notifier that
does not implement ``withdraw_one`` withdraws nothing (a prompt it showed goes stale, as before).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator, Sequence
from typing import Any

from oauth2_provider.scopes import get_scopes_backend

from .. import authorization_details as rar
from ..conf import ciba_settings
from ..errors import CibaError, NotificationError
from ..outbound import Outcome


class BaseNotifier:
    """The notifier contract, and the loop every shipped notifier shares.

    * ``device_kind``: the ``Device.kind`` this notifier reaches, one message per device of
      that kind; ``None`` (the default) sends once per request, whatever the devices.
    * ``required_settings``: ``CIBA`` keys that must be set; ``required_modules``: packages
      that must be installed, each with the requirement that brings it. The system check
      ``ciba.E015`` reports what is missing at startup (``configuration_problems``); a worker
      that runs anyway records the same words as a permanent failure.
    * ``prepare(auth_request=...)``: a context manager around the loop (a session, a key);
      its value reaches ``send_one`` as ``context``.
    * ``send_one(*, auth_request, target, context)``: reach one target (a ``Device``, or
      ``None``), raising ``NotificationError(transient=...)`` when it could not.

    ``auth_request`` is a ``ciba.AuthenticationRequest``; its ``notification_id`` stays the
    same across retries (receivers can de-duplicate) and changes when an operator re-sends.
    """

    device_kind: str | None = None
    required_settings: tuple[str, ...] = ()
    required_modules: dict[str, str] = {}

    @classmethod
    def configuration_problems(cls) -> list[str]:
        """What keeps this notifier from working, in words an operator can act on."""
        problems = [f'Set CIBA["{key}"]' for key in cls.required_settings if not ciba_settings.raw(key)]
        problems += [
            f'Install {module} (pip install "{requirement}")'
            for module, requirement in cls.required_modules.items()
            if importlib.util.find_spec(module) is None
        ]
        return problems

    def send(self, *, auth_request: Any, devices: Sequence[Any]) -> Outcome:
        return self._each(auth_request, devices, self.prepare, self.send_one)

    def withdraw(self, *, auth_request: Any, devices: Sequence[Any]) -> Outcome:
        """Tell the targets ``send`` reached that ``auth_request`` no longer awaits a decision,
        so a phone never shows a dead prompt. Nothing happens for a notifier without
        ``withdraw_one`` (the contract predates withdrawals)."""
        if type(self).withdraw_one is BaseNotifier.withdraw_one:
            return Outcome.ok()
        return self._each(auth_request, devices, self.prepare_withdrawal, self.withdraw_one)

    def _each(self, auth_request: Any, devices: Sequence[Any], prepare: Any, one: Any) -> Outcome:
        """The loop ``send`` and ``withdraw`` share: every target, failures combined once."""
        targets = self.targets(auth_request=auth_request, devices=devices)
        if not targets:
            return Outcome.ok()
        if problems := self.configuration_problems():
            return Outcome.failed("; ".join(problems) + ".", retry=False)
        outcomes = []
        with prepare(auth_request=auth_request) as context:
            for target in targets:
                try:
                    one(auth_request=auth_request, target=target, context=context)
                except NotificationError as exc:
                    outcomes.append(Outcome.failed(str(exc), retry=exc.transient))
                else:
                    outcomes.append(Outcome.ok())
        return Outcome.combine(outcomes)

    def targets(self, *, auth_request: Any, devices: Sequence[Any]) -> list[Any]:
        if self.device_kind is None:
            return [None]
        return [d for d in devices if d.kind == self.device_kind and (d.token or d.subscription)]

    @contextlib.contextmanager
    def prepare(self, *, auth_request: Any) -> Iterator[Any]:
        yield None

    def send_one(self, *, auth_request: Any, target: Any, context: Any) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def prepare_withdrawal(self, *, auth_request: Any) -> Iterator[Any]:
        yield None

    def withdraw_one(self, *, auth_request: Any, target: Any, context: Any) -> None:
        """Withdraw the prompt from one target; raise ``NotificationError`` as ``send_one``."""
        raise NotImplementedError


#: The longest summary line a notification carries, and the most characters of all its
#: summaries together: a Web Push message holds 4 KB in all (RFC 8030 §7.2), a lock screen
#: shows a line or two anyway, and the device page shows the whole details.
SUMMARY_MAX_CHARS = 120
SUMMARIES_MAX_CHARS = 480


def notification_payload(request: Any) -> dict[str, Any]:
    """What a person needs to recognise the request: who asks, what for, the binding message,
    and for a request with RFC 9396 ``authorization_details`` one short line per detail
    (``[{"type", "summary"}]``, in the site's default language: workers know no user's).

    Carries the ``auth_req_id`` (the device opens the consent API with it) but never the
    client's notification token. The full details and the hash the device approves with come
    from the consent API, never from a notification.
    """
    descriptions = get_scopes_backend().get_all_scopes()
    payload = {
        "auth_req_id": request.auth_req_id,
        "client_name": request.client.name or request.client.client_id,
        "binding_message": request.binding_message,
        "scopes": [{"scope": s, "description": str(descriptions.get(s, s))} for s in request.scopes],
        "acr_values": request.acr_values.split(),
        "expires_at": request.expires_at.isoformat(),
    }
    if details := getattr(request, "authorization_details", None):
        payload["authorization_details"] = short_form(details)
    return payload


def short_form(details: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One line per authorization detail; its type alone when it can no longer be rendered
    (the notification still goes out: the user finds the request, which cannot be approved)."""
    try:
        rendering = rar.rendering(details)
    except CibaError:
        return [{"type": str(d.get("type", "")), "summary": ""} for d in details]
    limit = min(SUMMARY_MAX_CHARS, SUMMARIES_MAX_CHARS // max(1, len(rendering)))
    return [{"type": r["type"], "summary": _shorten(r["summary"], limit)} for r in rendering]


#: The event type of a withdrawal, in every notifier's message.
WITHDRAWN_TYPE = "ciba.authentication_withdrawn"


def withdrawal_payload(request: Any) -> dict[str, Any]:
    """What a device needs to drop the prompt of ``request``: which request (the tag its
    notification was shown under is ``ciba-<auth_req_id>``), what became of it (``state``:
    approved, denied, expired, cancelled or issued; ``reason`` for a cancelled one: ``client``
    or ``superseded``) and who asked, for a line such as "Withdrawn by <client>". Small on
    purpose: it carries nothing the prompt did not already."""
    return {
        "type": WITHDRAWN_TYPE,
        "auth_req_id": request.auth_req_id,
        "state": request.effective_state(),
        "reason": request.cancel_reason or "",
        "client_name": request.client.name or request.client.client_id,
    }


def _shorten(text: str, limit: int) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def raise_for_status(what: str, status: int) -> None:
    """For ``send_one``: raise ``NotificationError`` unless ``status`` is 2xx."""
    outcome = Outcome.of_status(f"{what}: ", status)
    if not outcome.delivered:
        raise NotificationError(outcome.error, transient=outcome.retry)
