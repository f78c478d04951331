"""A site that keeps its own application model (tests.siteapp) and adds CibaClientMixin."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.siteapp"]  # noqa: F405
OAUTH2_PROVIDER_APPLICATION_MODEL = "siteapp.Application"
# PASSWORD_HASHERS and OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] come from tests.settings: a site's
# own application model stores client secrets under ciba's keyed hash the same way.
