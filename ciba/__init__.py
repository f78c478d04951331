"""OpenID Connect CIBA Core 1.0 for django-oauth-toolkit."""

__version__ = "0.1.0.dev0"
