"""The Redis cache backend, with one client and one connection pool per process.

Django's RedisCacheClient builds a new redis.Redis (and its ~170 response callbacks)
for every cache operation; on the Sandbox path that was a measurable share of the
console's overhead. redis.Redis is thread-safe, so one per pool serves every thread.
And Django makes a cache object, with its own pools, per thread and per async context:
under ASGI, where every request has a fresh context and thread, that meant a new Redis
connection for every request (a 256-stream burst spent most of its time connecting).
So every cache object with the same settings shares one client here.

`aget` waits on the event loop (Django's runs `get` on a thread): the gateway's
admission asks Redis on the loop, where a blocking read stalled every other call the
worker held for as long as Redis took to be scheduled.
"""

from __future__ import annotations

import functools
import threading

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

from config.loops import loop_local


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, servers, **options):
        super().__init__(servers, **options)
        # redis-py looks its own version up in the installed packages' metadata for every
        # connection it opens (~5 ms each, a burst's first second on a new worker).
        self._pool_options.setdefault("driver_info", _driver_info())

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        clients = self.__dict__.setdefault("_clients", {})
        client = clients.get(id(pool))
        if client is None:
            client = clients[id(pool)] = self._client(connection_pool=pool)
        return client


_shared: dict[str, ReusingRedisCacheClient] = {}
_shared_lock = threading.Lock()


class ConsoleRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient

    @cached_property
    def _cache(self):
        key = repr((self._servers, sorted(self._options.items())))
        client = _shared.get(key)
        if client is None:
            with _shared_lock:
                client = _shared.get(key)
                if client is None:
                    client = _shared[key] = self._class(self._servers, **self._options)
        return client

    async def aget(self, key, default=None, version=None):
        key = self.make_and_validate_key(key, version=version)
        value = await _loop_client(self._cache).get(key)
        return default if value is None else self._cache._serializer.loads(value)

    async def aget_raw_many(self, names: list[str]) -> list:
        """Values of several keys in one round trip on the loop: the first unpickled (the
        generation), the rest as text, as integrations/gateway/cooldowns.py stores them."""
        keys = [self.make_and_validate_key(name) for name in names]
        values = await _loop_client(self._cache).mget(keys)
        first = None if values[0] is None else self._cache._serializer.loads(values[0])
        rest = [v.decode() if isinstance(v, bytes) else v for v in values[1:]]
        return [first, *rest]

    # The sliding-window rule of integrations/ratelimit.decide, atomically in Redis.
    # Slices live in one hash per key; numbers come back as strings (Lua truncates floats).
    _SLIDING = """
    local now, cost, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
    local window, slices = tonumber(ARGV[4]), tonumber(ARGV[5])
    local size = window / slices
    local current = math.floor(now / size)
    local data = redis.call('HGETALL', KEYS[1])
    local total, kept = 0, {}
    for i = 1, #data, 2 do
      local b, c = tonumber(data[i]), tonumber(data[i + 1])
      if b < current - slices then
        redis.call('HDEL', KEYS[1], data[i])
      else
        total = total + c
        table.insert(kept, {b, c})
      end
    end
    if total + cost <= limit then
      redis.call('HINCRBY', KEYS[1], tostring(current), cost)
      redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000 * (slices + 2) / slices))
      return ''
    end
    table.sort(kept, function(x, y) return x[1] < y[1] end)
    local running = total
    for _, bc in ipairs(kept) do
      running = running - bc[2]
      if running + cost <= limit then
        return tostring((bc[1] + slices + 1) * size - now)
      end
    end
    return tostring(window)
    """

    def sliding_peek(self, key) -> dict[int, int]:
        """A sliding window's slices as they stand: {slice: units}."""
        key = self.make_and_validate_key(key)
        data = self._cache.get_client(key).hgetall(key)
        return {int(b): int(c) for b, c in data.items()}

    def sliding_window(self, key, cost, limit, window, slices, now) -> float | None:
        key = self.make_and_validate_key(key)
        client = self._cache.get_client(key, write=True)
        script = self.__dict__.get("_sliding_script")
        if script is None:
            script = self.__dict__["_sliding_script"] = client.register_script(self._SLIDING)
        wait = script(keys=[key], args=[repr(now), cost, limit, window, slices], client=client)
        wait = wait.decode() if isinstance(wait, bytes) else wait
        return float(wait) if wait else None


# One asyncio Redis client per event loop and server: its connections belong to the loop.
# A burst waits its turn for one of a few connections rather than opening one per call.
LOOP_CONNECTIONS = 16


def _loop_client(shared: ReusingRedisCacheClient):
    def make():
        from redis import asyncio as aioredis

        options = {k: v for k, v in shared._pool_options.items() if k != "parser_class"}
        pool = aioredis.BlockingConnectionPool.from_url(
            shared._servers[0], max_connections=LOOP_CONNECTIONS, **options
        )
        return aioredis.Redis(connection_pool=pool)

    return loop_local(("redis", id(shared)), make)


@functools.cache
def _driver_info():
    from redis.driver_info import DriverInfo

    return DriverInfo()
