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


def test_proportional_fill_gives_every_side_its_share_of_crowds():
    """Crowd photos (groups of 20 faces) beside photos of two: filled by faces
    alone the training side takes every crowd first; filled in proportion
    each side holds crowds and pairs as the whole set does, every class
    still near its share on every side."""
    labels, groups = [], []
    for g in range(10):  # 10 crowds of 20 faces
        labels += ["with_mask"] * 16 + ["without_mask"] * 3 + ["mask_weared_incorrect"]
        groups += [f"crowd{g}"] * 20
    for g in range(100):  # 100 photos of two faces
        labels += ["with_mask", "without_mask" if g % 4 else "mask_weared_incorrect"]
        groups += [f"pair{g}"] * 2

    def faces_per_photo(splits):
        return {
            s: sum(1 for x in splits if x == s) / len({g for g, x in zip(groups, splits) if x == s}) for s in FRACTIONS
        }

    whole = len(labels) / len(set(groups))
    by_faces = split_by_group(labels, groups, FRACTIONS, seed=0)
    assert {x for g, x in zip(groups, by_faces) if g.startswith("crowd")} == {"train"}
    assert faces_per_photo(by_faces)["test"] == 2
    fair = split_by_group(labels, groups, FRACTIONS, seed=0, proportional=True)
    assert all(abs(v / whole - 1) < 0.35 for v in faces_per_photo(fair).values()), faces_per_photo(fair)
    counts = Counter(zip(fair, labels))
    for side, share in FRACTIONS.items():  # every class near its share on every side, the rare one too
        for label, n in Counter(labels).items():
            assert counts[(side, label)] == pytest.approx(share * n, rel=0.25), (side, label)
