"""Grouped, stratified, seeded train/val/test split.

Items that share a person, a source photo or a near-duplicate group form one
group (connected components over those links), and a group is never cut:
every item of it lands in the same split. Groups are then placed one at a
time, largest first, where they bring the per-class counts closest to the
target fractions, each class's miss counted relative to its size: a rare
class (86 incorrectly worn masks beside 2,248 masks on a real VOC set) lands
on every side instead of being outweighed by the common ones.

``proportional`` also counts each side's miss relative to the side's own
target, so that a group goes where the most of its side is still to fill.
Counted in faces alone, the largest side has the largest gap until it is
nearly full, and the largest groups, the crowd photos, all go there first: on
596 Kaggle street photos the test side then held photos of 2.6 faces each
against 7.5 on the training side, and a tenth of its faces were under 16 px
against four tenths there. Filled in proportion, each side gets its share of
crowds: 4.8, 4.7 and 4.8 faces per photo, and a quarter to two fifths of the
faces under 16 px on every side (the whole set: a third).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

import numpy as np

SPLITS = ("train", "val", "test")


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def connected_groups(links: Sequence[Sequence[Hashable]], extra_pairs: Sequence[tuple[int, int]] = ()) -> list[int]:
    """Group id per item: items sharing any link key (or paired in ``extra_pairs``)
    end up in one group. Ids are the smallest item index of each group."""
    uf = _UnionFind(len(links))
    first_with: dict[Hashable, int] = {}
    for i, keys in enumerate(links):
        for key in keys:
            if key is None:
                continue
            if key in first_with:
                uf.union(i, first_with[key])
            else:
                first_with[key] = i
    for a, b in extra_pairs:
        uf.union(a, b)
    return [uf.find(i) for i in range(len(links))]


def split_by_group(labels: Sequence[str], groups: Sequence[Hashable], fractions: dict[str, float],
                   seed: int, proportional: bool = False) -> list[str]:
    """Split name per item; deterministic for a seed, whole groups only."""
    if len(labels) != len(groups):
        raise ValueError(f"labels and groups differ in length ({len(labels)} vs {len(groups)})")
    classes = sorted(set(labels))
    members: dict[Hashable, Counter] = {}
    for label, group in zip(labels, groups):
        members.setdefault(group, Counter())[label] += 1
    rng = np.random.default_rng(seed)
    order = list(members)
    rng.shuffle(order)  # ties between equal-sized groups are broken by the seed
    order.sort(key=lambda g: -sum(members[g].values()))
    total = Counter(labels)
    target = {s: np.array([fractions[s] * total[c] for c in classes]) for s in SPLITS}
    current = {s: np.zeros(len(classes)) for s in SPLITS}
    weight = {s: np.array([1.0 / (fractions[s] * total[c] if proportional else total[c]) for c in classes])
              if fractions[s] > 0 else 0.0 for s in SPLITS}  # a miss of one face counts more in a small class
    placed: dict[Hashable, str] = {}
    for g in order:
        counts = np.array([members[g][c] for c in classes], dtype=float)

        def cost_if(split: str) -> float:
            return sum(float(np.sum(weight[s] * ((current[s] + (counts if s == split else 0)) - target[s]) ** 2))
                       for s in SPLITS)

        best = min((s for s in SPLITS if fractions[s] > 0), key=cost_if)
        placed[g] = best
        current[best] += counts
    return [placed[g] for g in groups]
