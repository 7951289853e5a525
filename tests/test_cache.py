"""The Redis cache keeps one connection pool per process, however many cache objects Django builds."""

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache


def test_cache_objects_share_one_pool_and_work():
    # given two cache objects, as Django builds per request context under ASGI
    first = RedisCache(settings.REDIS_URL, settings.CACHES["default"])
    second = RedisCache(settings.REDIS_URL, settings.CACHES["default"])
    # then they draw from the same pool, so no request opens a new connection (fails with the default pool)
    assert first._cache._get_connection_pool(True) is second._cache._get_connection_pool(True)
    # and the cache works through it
    caches["default"].set("pool-check", 7, 5)
    assert second.get("pool-check") == 7
