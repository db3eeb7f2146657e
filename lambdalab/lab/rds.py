"""The process's Redis client: one thread-safe connection pool, lazily made."""

from __future__ import annotations

import threading

import redis
from django.conf import settings

_lock = threading.Lock()
_client: redis.Redis | None = None

PREFIX = "ll:"  # every key of the lab's live state


def client() -> redis.Redis:
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = redis.Redis.from_url(
                    settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
                )
    return _client


def key(*parts: object) -> str:
    return PREFIX + ":".join(str(p) for p in parts)
