"""The authentication device as a web page, for sites that have no phone app of their own.

A site adds ``"ciba.device"`` to ``INSTALLED_APPS`` and ``path("ciba/device/",
include("ciba.device.urls"))`` to its URLconf; its users then approve or deny CIBA requests
in the browser, signed in with the site's own login. The page is a client of the consent API
over HTTP and nothing more, so a native app can replace it without changing the server.
"""
