"""Events pushed to browsers over Channels: one group per project, sent after the transaction commits."""

import time

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from .cache import SharedConnectionPool


def project_group(project_id: int) -> str:
    return f"project.{project_id}"


def project_event_send(project_id: int, event: str, payload: dict) -> None:
    """Send `event` to every browser watching the project; call it from on_commit or a task."""
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(
        project_group(project_id), {"type": "project.event", "event": event, "payload": payload}
    )


_redis_client = None
_window_open_until: dict[str, float] = {}  # key -> monotonic time this process knows a window is open


def window_known_open(key: str) -> bool:
    """Whether this process knows, without asking Redis, that `key`'s window is open (so
    first_in_window would answer False)."""
    return _window_open_until.get(key, 0.0) > time.monotonic()


def window_length_get(key: str, default: float) -> float:
    """The length `window_length_set` last chose for `key`'s windows, or `default`."""
    value = redis_client().get(f"handover:window-length:{key}")
    return float(value) if value is not None else default


def window_length_set(key: str, seconds: float) -> None:
    """Make `key`'s next windows `seconds` long (remembered for an hour)."""
    redis_client().set(f"handover:window-length:{key}", seconds, ex=3600)


def redis_client() -> redis.Redis:
    global _redis_client
    if _redis_client is None:
        # The process's pool that Django's cache uses too; thread-safe, and reset after a fork.
        _redis_client = redis.Redis(connection_pool=SharedConnectionPool.from_url(settings.REDIS_URL))
    return _redis_client


def first_in_window(key: str, seconds: float) -> bool:
    """True for the first caller in each `seconds`-long window across all processes: the caller then
    schedules whatever the window stands for, to run when the window closes. Everyone else gets
    False, answered from this process's memory while it knows the window is open, so a burst of
    transitions costs one Redis round trip per process per window, not one each."""
    now = time.monotonic()
    if window_known_open(key):
        return False
    pipe = redis_client().pipeline(transaction=False)
    pipe.set(f"handover:window:{key}", 1, nx=True, px=int(seconds * 1000))
    pipe.pttl(f"handover:window:{key}")
    opened, left_ms = pipe.execute()
    _window_open_until[key] = now + max(left_ms, 0) / 1000
    return bool(opened)
