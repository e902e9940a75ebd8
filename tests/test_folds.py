from collections import Counter

import pytest

from maskdet.data.folds import fold_of_items, fold_sides
from maskdet.data.split import connected_groups

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
LABELS3 = ["with_mask", "without_mask", "mask_weared_incorrect"]


def _street_set():
    """120 photos of 1-9 faces, a rare class on 30 of them, and near-duplicate pairs of photos."""
    labels, photos = [], []
    for p in range(120):
        for f in range(1 + p % 9):
            photos.append(f"photo{p}")
            labels.append("mask_weared_incorrect" if f == 0 and p % 4 == 0 else LABELS3[(p + f) % 2])
    pairs = [(photos.index(f"photo{p}"), photos.index(f"photo{p + 1}")) for p in range(0, 20, 2)]
    return labels, photos, connected_groups([(p,) for p in photos], pairs)


@pytest.mark.parametrize("k", [2, 5])
def test_every_item_lands_in_one_fold_whole_groups_and_each_class_spread_evenly(k):
    labels, photos, groups = _street_set()
    folds = fold_of_items(labels, groups, k, seed=42)
    assert set(folds) == set(range(k))
    for g in set(groups):  # a photo and its near duplicates are tested together
        assert len({f for f, h in zip(folds, groups) if h == g}) == 1
    total = Counter(labels)
    for f in range(k):
        mine = Counter(label for label, g in zip(labels, folds) if g == f)
        for label in LABELS3:  # the rare class (30 faces) on every fold, within a few faces of its share
            assert abs(mine[label] - total[label] / k) <= max(2, 0.1 * total[label] / k), (f, label, mine)
    assert folds == fold_of_items(labels, groups, k, seed=42)  # drawn by the seed alone
    assert folds != fold_of_items(labels, groups, k, seed=7)


def test_each_fold_is_tested_once_and_the_rest_split_into_training_and_validation():
    labels, photos, groups = _street_set()
    folds = fold_of_items(labels, groups, 5, seed=42)
    tested = Counter()
    for f in range(5):
        sides = fold_sides(labels, groups, folds, f, FRACTIONS, seed=42)
        assert [s == "test" for s in sides] == [g == f for g in folds]
        tested.update(i for i, s in enumerate(sides) if s == "test")
        for g in set(groups):
            assert len({s for s, h in zip(sides, groups) if h == g}) == 1
        rest = [s for s in sides if s != "test"]
        assert 0.12 < rest.count("val") / len(rest) < 0.24  # 15 of 85: the study's own proportions
        val = Counter(label for label, s in zip(labels, sides) if s == "val")
        assert val["mask_weared_incorrect"] >= 1  # the epoch is chosen with the rare class in view
    assert sorted(tested) == list(range(len(labels))) and set(tested.values()) == {1}


def test_folds_ask_for_at_least_two_and_no_more_than_the_groups():
    labels, photos, groups = _street_set()
    with pytest.raises(ValueError, match="at least 2"):
        fold_of_items(labels, groups, 1, seed=0)
    with pytest.raises(ValueError, match="fewer folds"):
        fold_of_items(labels[:3], groups[:3], 5, seed=0)
