"""The one limiter: a sliding window, so no burst gets through across a window boundary."""

from __future__ import annotations

import threading

import pytest

from integrations import ratelimit


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "redis":
        request.getfixturevalue("redis_cache")
    return request.param


def test_a_burst_across_a_window_boundary_is_refused(store):
    # 30 a minute. A fixed window would reset at 60.0 and take 30 more: 60 in 2 s.
    start = 60 * 1000 - 1.0  # one second before a minute boundary
    admitted = sum(
        ratelimit.hit("boundary", 1, 30, 60, now=start + i / 100) is None for i in range(30)
    )
    assert admitted == 30
    after = [ratelimit.hit("boundary", 1, 30, 60, now=start + 2 + i / 100) for i in range(30)]
    assert all(wait is not None for wait in after)
    # Told to wait until the burst leaves the window: about 58 s, never less.
    assert 57 <= min(after) <= 61


def test_no_sixty_second_span_ever_holds_more_than_the_limit(store):
    admitted = []
    t = 5000.0
    while t < 5000 + 300:  # one attempt every 0.7 s for five minutes
        if ratelimit.hit("span", 1, 30, 60, now=t) is None:
            admitted.append(t)
        t += 0.7
    for i, first in enumerate(admitted):
        in_span = [a for a in admitted[i:] if a < first + 60]
        assert len(in_span) <= 30
    # And the limiter is not stingy: close to 30 a minute get through over five minutes.
    assert len(admitted) >= 140


def test_weighted_costs_count_tokens(store):
    assert ratelimit.hit("tokens", 900, 1000, 60, now=100.0) is None
    assert ratelimit.hit("tokens", 200, 1000, 60, now=101.0) is not None  # would make 1,100
    assert ratelimit.hit("tokens", 100, 1000, 60, now=101.0) is None
    assert ratelimit.hit("tokens", 5000, 1000, 60, now=101.0) == 60  # can never fit


def test_a_refused_hit_is_not_counted(store):
    assert ratelimit.hit("refused", 2, 2, 60, now=10.0) is None
    for _ in range(50):
        assert ratelimit.hit("refused", 1, 2, 60, now=11.0) is not None
    # The refusals did not push the wait out: the first two leave the window at ~70 s.
    assert ratelimit.hit("refused", 1, 2, 60, now=74.0) is None


def test_concurrent_callers_never_overshoot(store):
    admitted = []

    def caller():
        for _ in range(10):
            if ratelimit.hit("concurrent", 1, 25, 60, now=500.0) is None:
                admitted.append(1)

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 25
