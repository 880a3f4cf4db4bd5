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


def test_a_backlog_read_late_is_judged_by_when_the_calls_were_made() -> None:
    # Calls spread over 3 seconds, read in one burst much later: all are within the rate.
    limiter = UserRateLimiter(limit=100)
    calls = [946_684_800_000 + i * 30 for i in range(100)]
    assert all(limiter.admit("u", t) for t in calls)


def test_idle_users_are_forgotten() -> None:
    limiter = UserRateLimiter(limit=100)
    for i in range(UserRateLimiter.SWEEP_EVERY - 1):
        limiter.admit(f"user-{i}", 0)
    limiter.admit("late", 10_000)
    assert limiter.tracked_users == 1
