from django.urls import path

from .consumers import FunctionEventsConsumer

websocket_urlpatterns = [
    path("ws/functions/<uuid:function_id>/events", FunctionEventsConsumer.as_asgi()),
]
