"""The Celery app. Workers host execution environments (the lab issue wires the tasks)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lambdalab.settings")

app = Celery("lambdalab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
