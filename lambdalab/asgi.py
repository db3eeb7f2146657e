"""ASGI entry point: HTTP through Django; WebSockets join in the lab issue."""

import os

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lambdalab.settings")

application = ProtocolTypeRouter({"http": get_asgi_application()})
