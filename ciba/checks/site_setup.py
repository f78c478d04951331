"""How the site wires CIBA in: the OAuth application model, django-oauth-toolkit, the Celery app.

CIBA can run only if the site's application model carries the CIBA metadata, DOT has OpenID
Connect on with a signing key and uses the CIBA server and validator classes, and the site's own
Celery app is loaded (device notifications and client callbacks are Celery tasks). Each missing
piece is an error; a Celery app without a broker is a warning.
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from django.core import checks
from oauth2_provider import models as dot_models
from oauth2_provider.settings import oauth2_settings

from .. import constants
from ..conf import ciba_settings
from ..models import CibaClientMixin
from ..oauth.server import CibaServerMixin
from ..oauth.validators import CibaValidator
from .codes import Codes
from .values import as_list, dotted_name


@checks.register(checks.Tags.models)
def check_application_model(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    model = dot_models.get_application_model()
    if issubclass(model, CibaClientMixin):
        return []
    return [
        checks.Error(
            f"The OAuth application model {model._meta.label} does not include CibaClientMixin, "
            "so clients cannot register CIBA metadata.",
            hint='Set OAUTH2_PROVIDER_APPLICATION_MODEL = "ciba.Application" (before the first migrate), '
            "or add ciba.models.CibaClientMixin before AbstractApplication in your own model's bases.",
            id=Codes.APPLICATION_MODEL,
        )
    ]


@checks.register(checks.Tags.security)
def check_oauth2_provider(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    dot = oauth2_settings
    messages: list[checks.CheckMessage] = []
    if not dot.OIDC_ENABLED:
        messages.append(
            checks.Error(
                "OpenID Connect is disabled; CIBA is an OpenID Connect flow and issues ID tokens.",
                hint='Set OAUTH2_PROVIDER["OIDC_ENABLED"] = True.',
                id=Codes.OIDC_DISABLED,
            )
        )
    if not dot.OIDC_RSA_PRIVATE_KEY:
        messages.append(
            checks.Error(
                "No OpenID Connect signing key is configured, so ID tokens cannot be signed.",
                hint='Set OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"] to a PEM RSA private key '
                "(read it from the environment or a file, never from source control).",
                id=Codes.NO_SIGNING_KEY,
            )
        )
    try:
        server_class = dot.OAUTH2_SERVER_CLASS
        validator_class = dot.OAUTH2_VALIDATOR_CLASS
    except ImportError as exc:
        return messages + [
            checks.Error(str(exc), hint="Fix the dotted path in OAUTH2_PROVIDER.", id=Codes.IMPORT_STRING)
        ]
    if not (isinstance(server_class, type) and issubclass(server_class, CibaServerMixin)):
        messages.append(
            checks.Error(
                f"DOT's server class {dotted_name(server_class)} does not register the CIBA grant.",
                hint='Set OAUTH2_PROVIDER["OIDC_SERVER_CLASS"] = "ciba.oauth.server.CibaServer", or mix '
                "ciba.oauth.server.CibaServerMixin into your own server class.",
                id=Codes.SERVER_CLASS,
            )
        )
    if not (isinstance(validator_class, type) and issubclass(validator_class, CibaValidator)):
        messages.append(
            checks.Error(
                f"DOT's validator class {dotted_name(validator_class)} does not understand the CIBA grant.",
                hint='Set OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"] = "ciba.oauth.validators.CibaValidator" '
                "or subclass it.",
                id=Codes.VALIDATOR_CLASS,
            )
        )
    if constants.MODE_PUSH in as_list(ciba_settings.raw("DELIVERY_MODES")) and not dot.OIDC_ISS_ENDPOINT:
        messages.append(
            checks.Error(
                "Push mode mints tokens in a Celery worker, where there is no HTTP request to derive "
                "the issuer from.",
                hint='Set OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"] to the issuer URL, or remove "push" from '
                'CIBA["DELIVERY_MODES"].',
                id=Codes.PUSH_WITHOUT_ISSUER,
            )
        )
    return messages


@checks.register()
def check_celery(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Device notifications and callbacks are Celery tasks: without the site's Celery app they
    go to Celery's fallback app, whose broker is amqp://localhost, and never run."""
    if current_app.main in (None, "default"):
        return [
            checks.Error(
                "No Celery app is loaded: device notifications and client callbacks would be sent to "
                "Celery's default broker (amqp://localhost) and never run.",
                hint="Create <project>/celery.py with app = Celery(...), "
                'app.config_from_object("django.conf:settings", namespace="CELERY"), and import it in '
                '<project>/__init__.py (docs/integration.md, "Celery").',
                id=Codes.NO_CELERY_APP,
            )
        ]
    if not current_app.conf.task_always_eager and not current_app.conf.broker_url:
        return [
            checks.Warning(
                "The Celery app has no broker configured, so tasks go to amqp://localhost.",
                hint='Set CELERY_BROKER_URL (e.g. "redis://127.0.0.1:6379/0"), or '
                "CELERY_TASK_ALWAYS_EAGER = True to run tasks in the web process during development.",
                id=Codes.NO_BROKER,
            )
        ]
    return []
