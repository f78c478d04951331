"""The pending-poll fast lane's public import path: wrap the site's WSGI application in it::

    from ciba.fast_lane import FastLane

    application = FastLane(get_wsgi_application())

(or ``ChunkedBodies(get_wsgi_application())`` for a site without the lane). The lane lives in
the token endpoint's wing, ``ciba.oauth.lane``, beside the view whose bytes it gives; this
module only names it, so that a site's ``wsgi.py`` never depends on where the wing keeps it.
"""

from .oauth.lane import ChunkedBodies, FastLane, dechunk

__all__ = ["ChunkedBodies", "FastLane", "dechunk"]
