"""A site that keeps its own application model (tests.siteapp) and adds CibaClientMixin."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.siteapp"]  # noqa: F405
OAUTH2_PROVIDER_APPLICATION_MODEL = "siteapp.Application"
