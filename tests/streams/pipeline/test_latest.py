"""The bounded cache of each user's latest recommendation."""

from __future__ import annotations

import pytest

from reckon.streams.pipeline.latest import LatestRecommendations


def test_a_users_newer_recommendation_replaces_the_older() -> None:
    latest = LatestRecommendations(10)
    latest.update({b"acme\x1fu1": b"1", b"acme\x1fu2": b"2"})
    latest.update({b"acme\x1fu1": b"3"})
    assert latest.get(b"acme\x1fu1") == b"3" and latest.get(b"acme\x1fu2") == b"2" and len(latest) == 2
    assert latest.get(b"globex\x1fu1") is None          # keys are per tenant


def test_the_least_recently_published_users_go_first() -> None:
    latest = LatestRecommendations(2)
    latest.update({b"a": b"1", b"b": b"2"})
    latest.update({b"a": b"3"})                        # a published again: b is now the oldest
    latest.update({b"c": b"4"})
    assert (latest.get(b"a"), latest.get(b"b"), latest.get(b"c")) == (b"3", None, b"4")
    with pytest.raises(ValueError):
        LatestRecommendations(0)


def test_a_byte_bound_drops_the_least_recently_published_users_until_it_holds() -> None:
    latest = LatestRecommendations(100, max_bytes=30)
    latest.update({b"a": b"x" * 9, b"b": b"y" * 9})         # 10 bytes each with the key
    latest.update({b"a": b"z" * 4})                         # a shrinks and is the newest: b is oldest
    assert latest.bytes == 15 and len(latest) == 2
    latest.update({b"c": b"w" * 19})                        # 35 > 30: b goes, a stays (25)
    assert (latest.get(b"a"), latest.get(b"b"), latest.bytes) == (b"z" * 4, None, 25)
    latest.update({b"d": b"v" * 99})                        # larger than the bound alone: held, alone
    assert len(latest) == 1 and latest.bytes == 100 and latest.get(b"d") is not None
    with pytest.raises(ValueError):
        LatestRecommendations(1, max_bytes=0)


def test_held_bytes_follow_replacements_and_the_user_bound() -> None:
    latest = LatestRecommendations(2)
    latest.update({b"a": b"1234", b"b": b"12"})
    latest.update({b"a": b"1", b"c": b"123"})               # a replaced, b dropped by the user bound
    assert latest.bytes == len(b"a1") + len(b"c123") and len(latest) == 2
