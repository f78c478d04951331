"""The example project's WSGI application, served by ``./scripts/serve`` (granian).

``FastLane`` answers pending polls at the token endpoint from the shared poll state before
Django's middleware runs, and hands every other request to Django untouched
(``ciba.fast_lane``). ``CIBA_FAST_LANE=off`` serves Django alone (to compare, or to rule the
lane out); a chunked request body still gets its length then (``ChunkedBodies``), since
granian hands one over without it. granian serves no files: static files come from
WhiteNoise's middleware inside Django, out of what ``collectstatic`` gathered (settings.py).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
application = get_wsgi_application()

from ciba.fast_lane import ChunkedBodies, FastLane  # noqa: E402 - needs the app registry filled

if os.environ.get("CIBA_FAST_LANE", "on") != "off":
    application = FastLane(application)
else:
    application = ChunkedBodies(application)
