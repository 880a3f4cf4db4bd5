from service.domain.limiter import UserRateLimiter


def test_150_calls_in_one_second_admit_100() -> None:
    limiter = UserRateLimiter(limit=100)
    decisions = [limiter.admit("u", 1_000_000 + i * 5) for i in range(150)]
    assert decisions.count(True) == 100
    assert decisions[:100] == [True] * 100


def test_another_user_is_not_limited_by_the_first() -> None:
    limiter = UserRateLimiter(limit=100)
    for i in range(150):
        limiter.admit("busy", 1_000_000 + i)
    assert all(limiter.admit("quiet", 1_000_000 + i) for i in range(20))


def test_the_window_slides_with_record_time() -> None:
    limiter = UserRateLimiter(limit=2)
    assert limiter.admit("u", 0)
    assert limiter.admit("u", 500)
    assert not limiter.admit("u", 999)
    assert limiter.admit("u", 1000)  # the call at 0 left the window
    assert not limiter.admit("u", 1400)
    assert limiter.admit("u", 1500)


def test_refused_calls_do_not_fill_the_window() -> None:
    limiter = UserRateLimiter(limit=1)
    assert limiter.admit("u", 0)
    assert not limiter.admit("u", 900)
    assert limiter.admit("u", 1001)


def test_decisions_depend_on_timestamps_not_on_when_they_are_read() -> None:
    live, replay = UserRateLimiter(limit=3), UserRateLimiter(limit=3)
    times = [0, 100, 200, 300, 1150, 1200, 1250, 1300]
    assert [live.admit("u", t) for t in times] == [replay.admit("u", t) for t in times]
