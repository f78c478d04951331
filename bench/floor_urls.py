"""The example project's URLconf with the floor's views first (``bench.floor``).

First, so URL resolution costs them the least a Django site can: a minimal CIBA server would
have its endpoint and little else. Every other path is the example project's, so the floor's
server starts, and is checked, like ours.
"""

from django.urls import path

from bench import floor
from example_project import urls

urlpatterns = [
    path("bench/floor/orm/", floor.orm, name="bench-floor-orm"),
    path("bench/floor/sql/", floor.sql, name="bench-floor-sql"),
    path("bench/floor/approve/<str:auth_req_id>/", floor.approve, name="bench-floor-approve"),
    *urls.urlpatterns,
]
handler500 = urls.handler500
