"""Django's ``CELERY_*`` settings as a plain dict, for ``app.config_from_object``.

Celery reads its configuration on every task it publishes (about seven lookups, each trying
two spellings of the key). Pointed at ``django.conf:settings`` every lookup of a key the site
did not set goes through Django's lazy settings object and raises ``AttributeError``: about
150 µs per published task, measured on the backchannel endpoint (docs/performance.md). A
dict answers the same lookups in microseconds. Settings are read once, when Celery first
needs them, so change ``CELERY_*`` settings before that (as with any Django setting).
"""

from django.conf import settings

CONFIG = {name: getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")}
