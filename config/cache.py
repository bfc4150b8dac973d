"""The Redis cache backend, with one client object reused per connection pool.

Django's RedisCacheClient builds a new redis.Redis (and its ~170 response callbacks)
for every cache operation; on the Sandbox path that was a measurable share of the
console's overhead. redis.Redis is thread-safe, so one per pool serves every thread.
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class ReusingRedisCacheClient(RedisCacheClient):
    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        clients = self.__dict__.setdefault("_clients", {})
        client = clients.get(id(pool))
        if client is None:
            client = clients[id(pool)] = self._client(connection_pool=pool)
        return client


class ConsoleRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient

    def incr_window(self, key: str, delta: int, timeout: int) -> int:
        """Increment a counter and set its expiry in one round trip (INCRBY + EXPIRE)."""
        key = self.make_and_validate_key(key)
        pipe = self._cache.get_client(key, write=True).pipeline()
        pipe.incrby(key, delta)
        pipe.expire(key, timeout)
        count, _ = pipe.execute()
        return int(count)
