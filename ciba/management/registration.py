"""What the client-registering commands share: find or start a row, save it only if valid."""

from __future__ import annotations

import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from oauth2_provider.models import get_application_model


def existing_or_new(client_id: str | None) -> Any:
    """The application with ``client_id`` (which must exist), or a new one with a random id."""
    Application = get_application_model()
    if not client_id:
        return Application(client_id=secrets.token_urlsafe(24))
    app = Application.objects.filter(client_id=client_id).first()
    if app is None:
        raise CommandError(f"No client with id {client_id!r}.")
    return app


def save_validated(app: Any, hint: str = "") -> None:
    """Save ``app`` if it passes the admin form's validation; else say every problem and stop."""
    try:
        app.full_clean()
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        raise CommandError(f"The client was not saved: {problems}{hint}") from None
    app.save()
