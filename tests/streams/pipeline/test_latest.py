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
