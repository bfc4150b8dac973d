"""The health of each saved model that routes call, shared by every worker and host.

Kept in Redis (an in-process twin stands in without it, as for the rate limiter):
- `cool:<model>`: "until|last error", until = when it is usable again (0: usable,
  with a failure on record). Kept a while past `until`, so the first call after a
  cooldown is a probe (half-open) and not the return of all traffic.
- `fails:<model>`: failures within the route's window.
- `probe:<model>`: held by the one call that probes a target after its cooldown; a
  failed probe holds it until the new cooldown ends.
- `busy:<model>` and `lat:<model>`: calls in flight and recent latency, for the
  least-busy and lowest-latency strategies.

State is read fresh on every choice, in one MGET, never from a local copy. A failure is
counted by one script, atomically, and a later failure can only push a cooldown further
out, never bring it closer: the two bugs LiteLLM's users reported. A Redis restart loses
the state, and every target counts as healthy again: the gateway then finds out anew,
which costs a failed attempt and never an answer.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass

from django.core.cache import cache

HOLD_AFTER = 600  # seconds a cooldown's record outlives it, so the next call probes
LATENCY_WEIGHT = 0.3  # how far one call moves the recent latency (an exponential average)


@dataclass(frozen=True)
class Health:
    until: float = 0.0  # usable again at (epoch seconds); 0: no cooldown on record
    error: str = ""  # the last failure, "kind: message"
    recorded: bool = False  # a failure is on record (what a success clears)
    busy: int = 0
    latency_ms: float | None = None

    def cooling(self, now: float) -> bool:
        return self.until > now

    def probing(self, now: float) -> bool:
        """After a cooldown: one call probes before traffic returns."""
        return 0 < self.until <= now


_FAIL = """
local now, window, threshold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cooldown, retry_until, hold = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7])
local fails = redis.call('INCR', KEYS[2])
if fails == 1 then redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000)) end
local old = 0
local current = redis.call('GET', KEYS[1])
if current then old = tonumber(string.match(current, '^([^|]*)')) or 0 end
local new = old
if retry_until > new then new = retry_until end
if fails >= threshold or (old > 0 and old <= now) then
  if now + cooldown > new then new = now + cooldown end
end
local ttl = hold
if new > now then ttl = new - now + hold end
redis.call('SET', KEYS[1], string.format('%.3f', new) .. '|' .. ARGV[6], 'PX', math.ceil(ttl * 1000))
if new > old then
  redis.call('DEL', KEYS[2])
  if redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('PEXPIRE', KEYS[3], math.max(1, math.ceil((new - now) * 1000)))
  end
end
return string.format('%.3f', new)
"""


@functools.lru_cache(maxsize=4096)
def _names(pk) -> tuple[str, str, str, str, str]:
    return tuple(f"gw-{part}:{pk}" for part in ("cool", "fails", "probe", "busy", "lat"))


class _Redis:
    def __init__(self, backend):
        self.backend = backend
        self.client = backend._cache.get_client(write=True)
        self.script = self.client.register_script(_FAIL)
        self.keys: dict[str, str] = {}

    def key(self, name: str) -> str:
        # Built once per name: Django's key checks cost more than the round trip's parse.
        key = self.keys.get(name)
        if key is None:
            if len(self.keys) > 10_000:
                self.keys.clear()
            key = self.keys[name] = self.backend.make_and_validate_key(name)
        return key

    def mget(self, names: list[str]) -> list:
        values = self.client.mget([self.key(n) for n in names])
        return [v.decode() if isinstance(v, bytes) else v for v in values]

    def fail(self, pk, args: list) -> float:
        cool, fails, probe, _, _ = _names(pk)
        keys = [self.key(cool), self.key(fails), self.key(probe)]
        return float(self.script(keys=keys, args=args, client=self.client))

    def delete(self, names: list[str]) -> None:
        self.client.delete(*(self.key(n) for n in names))

    def add(self, name: str, seconds: float) -> bool:
        return bool(self.client.set(self.key(name), "1", nx=True, px=max(1, int(seconds * 1000))))

    def incr(self, name: str, by: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.incrby(self.key(name), by)
        pipe.expire(self.key(name), HOLD_AFTER)
        pipe.execute()

    def set(self, name: str, value: str, seconds: int) -> None:
        self.client.set(self.key(name), value, ex=seconds)


class _Memory:
    """The same rules in one process (development and tests without Redis)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.data: dict[str, tuple[str, float]] = {}  # name: (value, expires at)

    def _get(self, name: str):
        entry = self.data.get(name)
        if entry is None or entry[1] <= time.time():
            self.data.pop(name, None)
            return None
        return entry[0]

    def mget(self, names: list[str]) -> list:
        with self.lock:
            return [self._get(n) for n in names]

    def fail(self, pk, args: list) -> float:
        now, window, threshold, cooldown, retry_until, error, hold = args
        cool, fails_name, probe, _, _ = _names(pk)
        with self.lock:
            fails = int(self._get(fails_name) or 0) + 1
            expires = self.data[fails_name][1] if fails > 1 else now + window
            self.data[fails_name] = (str(fails), expires)
            current = self._get(cool)
            old = float(current.split("|", 1)[0]) if current else 0.0
            new = max(old, retry_until)
            if fails >= threshold or 0 < old <= now:
                new = max(new, now + cooldown)
            ttl = new - now + hold if new > now else hold
            self.data[cool] = (f"{new:.3f}|{error}", now + ttl)
            if new > old:
                self.data.pop(fails_name, None)
                if self._get(probe) is not None:  # a failed probe: the next one waits
                    self.data[probe] = ("1", max(new, now + 0.001))
            return round(new, 3)  # as Redis answers: '%.3f'

    def delete(self, names: list[str]) -> None:
        with self.lock:
            for n in names:
                self.data.pop(n, None)

    def add(self, name: str, seconds: float) -> bool:
        with self.lock:
            if self._get(name) is not None:
                return False
            self.data[name] = ("1", time.time() + seconds)
            return True

    def incr(self, name: str, by: int) -> None:
        with self.lock:
            value = int(self._get(name) or 0) + by
            self.data[name] = (str(value), time.time() + HOLD_AFTER)

    def set(self, name: str, value: str, seconds: int) -> None:
        with self.lock:
            self.data[name] = (value, time.time() + seconds)


_memory = _Memory()
_stores: dict[int, _Redis] = {}


def _store():
    backend = getattr(cache, "_cache", None) if hasattr(cache, "sliding_window") else None
    if backend is None:
        return _memory
    store = _stores.get(id(backend))
    if store is None:
        store = _stores[id(backend)] = _Redis(cache)
    return store


def health_names(pks: list) -> list[str]:
    """The records `read` reads for these models."""
    out = []
    for pk in pks:
        cool, _, _, busy, latency = _names(pk)
        out += (cool, busy, latency)
    return out


def read(pks: list, extra: list[str] = ()) -> tuple[dict, list]:
    """Each model's Health, and the values of `extra` names, in one round trip: the one
    that read this request's generation, when it read these too (the gateway's event
    loop does), else one of its own."""
    from integrations import callcache

    names = health_names(pks)
    wanted = names + list(extra)
    values = callcache.looked(wanted)
    if values is None:
        values = _store().mget(wanted)
    health = {}
    for i, pk in enumerate(pks):
        cool, busy, latency = values[3 * i : 3 * i + 3]
        until, _, error = (cool or "").partition("|")
        health[pk] = Health(
            until=float(until or 0),
            error=error,
            recorded=cool is not None,
            busy=max(0, int(busy or 0)),
            latency_ms=float(latency) if latency else None,
        )
    return health, values[len(names) :]


def failed(
    pk, error: str, *, threshold: int, window: int, cooldown: int, retry_after: float | None
) -> float:
    """Count a failure; return when the model is usable again (0 or a past time: now).
    An upstream's Retry-After cools it down at once, whatever the count."""
    now = time.time()
    retry_until = now + retry_after if retry_after else 0.0
    args = [now, window, threshold, cooldown, retry_until, error[:300], HOLD_AFTER]
    return _store().fail(pk, args)


def broken(pk, error: str, cooldown: int) -> float:
    """A target whose upstream refused the console's credentials: cool it down now."""
    return failed(pk, error, threshold=1, window=cooldown, cooldown=cooldown, retry_after=None)


def succeeded(pk) -> None:
    """A call went through: the failures on record are forgotten (and the probe ends)."""
    cool, fails, probe, _, _ = _names(pk)
    _store().delete([cool, fails, probe])


def claim_probe(pk, seconds: float) -> bool:
    """True for the one caller that may probe a model now (for `seconds` at most)."""
    return _store().add(_names(pk)[2], seconds)


def in_flight(pk, by: int) -> None:
    _store().incr(_names(pk)[3], by)


def observed(pk, latency_ms: float, before: float | None) -> None:
    """Move the model's recent latency towards one call's."""
    value = latency_ms if before is None else before + LATENCY_WEIGHT * (latency_ms - before)
    _store().set(_names(pk)[4], f"{value:.1f}", HOLD_AFTER)


def remember(name: str, value: str, seconds: int) -> None:
    """A note beside the health records (which target a tool call came from)."""
    _store().set(name, value, seconds)


def forget_all() -> None:
    """Tests and benchmarks: start from healthy targets, here and in Redis."""
    _memory.data.clear()
    store = _store()
    if isinstance(store, _Redis):
        names = store.client.scan_iter(match=store.key("gw-*"), count=1000)
        for batch in _batches(list(names), 500):
            store.client.delete(*batch)


def _batches(items: list, size: int):
    return (items[i : i + size] for i in range(0, len(items), size))
