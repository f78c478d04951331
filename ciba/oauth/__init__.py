"""The token endpoint, in one wing: the pending-poll front and the grant it feeds.

Front, in the order a token request meets it:

* ``lane``: ``FastLane``, the WSGI layer that answers pending polls before Django (public as
  ``ciba.fast_lane``), and ``ChunkedBodies``.
* ``view``: ``CibaTokenView``, DOT's token view screened first (``ciba.oauth_urls`` routes
  ``token/`` here).
* ``screening``: what the view refuses before DOT (unreadable bodies, input DOT would answer
  with a 500).
* ``prescreen``: a CIBA grant request's first look (repeated parameters; a pending poll
  answered from a shared poll state), and ``oauth_error``, the bytes of every answer the front
  gives itself. The lane and the view both ask it.

Back, reached through DOT's settings (``OIDC_SERVER_CLASS``, ``OAUTH2_VALIDATOR_CLASS``):

* ``server``: ``CibaServer`` / ``CibaServerMixin``, which register the grant and the ``DPoP``
  scheme (``resource``).
* ``grant``: the CIBA grant on oauthlib's token endpoint.
* ``validators``: ``CibaValidator``, DOT's validator taught the grant (client authentication,
  the request's state, the poll counted in the poll state, bindings, ID-token claims).

The poll-state store itself is ``ciba.polling``; the wing asks it and never the reverse.
"""
