"""The example project's Celery app: ``celery -A example_project worker``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
# Celery's CELERY_* settings, copied from Django's settings once (celery_config.py says why).
app.config_from_object("example_project.celery_config:CONFIG", namespace="CELERY")
app.autodiscover_tasks()
