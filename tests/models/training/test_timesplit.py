import pytest

from reckon.models.training.timesplit import Example, time_split


def test_slices_by_count_and_examples_carry_everything_before_them() -> None:
    # two users, ten clicks in time order: u1 a b c d e, u2 p q r s t interleaved
    clicks = [("u1" if i % 2 == 0 else "u2", f"{'abcde'[i // 2] if i % 2 == 0 else 'pqrst'[i // 2]}", float(i))
              for i in range(10)]
    split = time_split(list(reversed(clicks)), eval_fraction=0.2, valid_fraction=0.2)   # any order in
    assert split.train == [["a", "b", "c"], ["p", "q", "r"]]                          # clicks 0..5
    assert split.valid == [Example(("a", "b", "c"), "d"), Example(("p", "q", "r"), "s")]
    assert split.eval == [Example(("a", "b", "c", "d"), "e"), Example(("p", "q", "r", "s"), "t")]
    assert (split.valid_from, split.eval_from) == (6.0, 8.0)
    assert split.description["eval_examples"] == 2 and split.description["users"] == 2


def test_a_first_click_predicts_nothing_and_bad_fractions_fail() -> None:
    clicks = [("old", "a", 0.0), ("old", "b", 1.0), ("old", "c", 2.0), ("new", "x", 3.0)]
    split = time_split(clicks, eval_fraction=0.25, valid_fraction=0.25)
    assert split.eval == [] and split.description["clicks"] == 4                       # "new" had no history
    with pytest.raises(ValueError, match="leave room"):
        time_split(clicks, eval_fraction=0.6, valid_fraction=0.5)
    with pytest.raises(ValueError, match="too few"):
        time_split(clicks[:2])
