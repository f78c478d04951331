"""What the client-registering commands share: find or start a row, save it only if valid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.management.base import CommandError
from oauth2_provider.models import get_application_model


def existing_or_new(client_id: str | None) -> Any:
    """The application with ``client_id`` (which must exist), or a new one with a random id.

    The id is the model's own (DOT's generator: 40 letters and digits), as the admin and
    dynamic registration give: an id an operator passes back on the command line must never
    start with "-", which ``--client-id -G3e…`` would take for an option."""
    Application = get_application_model()
    if not client_id:
        return Application()
    app = Application.objects.filter(client_id=client_id).first()
    if app is None:
        raise CommandError(f"No client with id {client_id!r}.")
    return app


def save_validated(app: Any, hint: str = "", names: Mapping[str, str] | None = None) -> None:
    """Save ``app`` if it passes the admin form's validation (the model's, which asks
    ``ciba.registration_rules``); else say every problem and stop, having written nothing.

    ``names`` says what the person typed for each field (a command's option), so that each
    problem points at what to change; a field without one is named as it is.
    """
    try:
        app.full_clean()
    except ValidationError as exc:
        names = names or {}
        problems = "; ".join(
            f"{names.get(field, field)}: {' '.join(messages)}"
            if field != NON_FIELD_ERRORS
            else " ".join(messages)
            for field, messages in exc.message_dict.items()
        )
        raise CommandError(f"The client was not saved: {problems}{hint}") from None
    app.save()
