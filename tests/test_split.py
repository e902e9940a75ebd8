from collections import Counter

import numpy as np
import pytest

from maskdet.data.split import connected_groups, split_by_group

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def _random_data(seed, n=600, people=60):
    rng = np.random.default_rng(seed)
    person = rng.integers(0, people, n)
    photo = rng.integers(0, people * 2, n)
    labels = rng.choice(["with_mask", "without_mask", "mask_weared_incorrect"], n).tolist()
    return person, photo, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_person_or_photo_on_two_sides(seed):
    person, photo, labels = _random_data(seed)
    groups = connected_groups([(f"p{a}", f"f{b}") for a, b in zip(person, photo)])
    splits = split_by_group(labels, groups, FRACTIONS, seed=7)
    for key in (person, photo):
        sides = {}
        for k, s in zip(key, splits):
            sides.setdefault(k, set()).add(s)
        assert all(len(v) == 1 for v in sides.values())


def test_near_duplicate_pairs_join_groups():
    groups = connected_groups([("a",), ("b",), ("c",)], extra_pairs=[(0, 2)])
    assert groups[0] == groups[2] != groups[1]


def test_deterministic_for_a_seed_and_close_to_fractions():
    labels = ["with_mask", "without_mask", "mask_weared_incorrect"] * 200
    groups = [i // 6 for i in range(600)]  # 100 groups of 6
    a = split_by_group(labels, groups, FRACTIONS, seed=3)
    assert a == split_by_group(labels, groups, FRACTIONS, seed=3)
    counts = Counter(a)
    for name, frac in FRACTIONS.items():
        assert counts[name] == pytest.approx(frac * 600, abs=12)
    per_class = Counter(zip(a, labels))
    for name in FRACTIONS:  # stratified: every class close to its share in every split
        share = [per_class[(name, c)] for c in set(labels)]
        assert max(share) - min(share) <= 12


def test_zero_fraction_split_stays_empty():
    labels = ["with_mask", "without_mask"] * 20
    out = split_by_group(labels, list(range(40)), {"train": 0.8, "val": 0.0, "test": 0.2}, seed=0)
    assert "val" not in out and Counter(out)["test"] == 8
