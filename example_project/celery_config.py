"""Django's ``CELERY_*`` settings as a plain dict, for ``app.config_from_object``.

Celery reads its configuration on every task it publishes (about seven lookups, each trying
two spellings of the key). Pointed at ``django.conf:settings`` every lookup of a key the site
did not set goes through Django's lazy settings object and raises ``AttributeError``: about
150 µs per published task, measured on the backchannel endpoint (docs/performance.md). A
dict answers the same lookups in microseconds. Settings are read once, when Celery first
needs them, so change ``CELERY_*`` settings before that (as with any Django setting).

Under the settings, ``ciba.dispatch.broker_settings``: what keeps workers, beat and
publishers alive through a broker outage (docs/operations.md). A ``CELERY_*`` setting of the
same name wins.
"""

from django.conf import settings

from ciba.dispatch import broker_settings

CONFIG = {
    **broker_settings(getattr(settings, "CELERY_BROKER_URL", "") or ""),
    **{name: getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")},
}
