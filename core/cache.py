"""A Redis connection pool shared by the whole process, for Django's Redis cache.

Django builds a cache object per thread (and per request context under ASGI), and each one would
open its own pool and so its own Redis connections. This pool class hands every cache object the same pool
per URL; redis-py resets a pool's connections itself after a fork (Celery's prefork workers).
"""

import threading

import redis


class SharedConnectionPool(redis.ConnectionPool):
    _shared: dict[tuple, redis.ConnectionPool] = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs) -> redis.ConnectionPool:
        key = (url, tuple(sorted(kwargs.items(), key=lambda kv: kv[0])))
        with cls._lock:
            if key not in cls._shared:
                cls._shared[key] = super().from_url(url, **kwargs)
            return cls._shared[key]
