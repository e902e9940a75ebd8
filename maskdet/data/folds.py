"""Cross-validation folds: every photo of a set tested once, by a model that
never saw it.

On a set of a few hundred photos with a rare class, one test split holds a
handful of that class's faces (13 incorrectly worn masks in the 90 test
photos of 596 Kaggle street photos), and which photos land there moves the
figures more than most settings do (docs/experiment-log.md). K folds test
every photo once; their answers pooled score each class on all its faces.

The folds are drawn as the study's split is (``split.split_by_group``, in
proportion): whole groups (a photo and its near duplicates), each class
spread evenly. For fold k the other folds are split again into training and
validation in the study's own proportions, so each model learns from as much
of the set as the study's own does, less the larger test side.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from maskdet.data.split import split_by_group


def fold_of_items(labels: Sequence[str], groups: Sequence[Hashable], k: int, seed: int) -> list[int]:
    """The fold (0 to ``k`` - 1) of each item: fold 0 drawn from the whole as a
    test side of 1/k, fold 1 from the rest as 1/(k-1) of it, and so on; whole
    groups only, each class's items spread evenly over the folds."""
    if k < 2:
        raise ValueError(f"k = {k}: cross-validation needs at least 2 folds")
    if len(set(groups)) < k:
        raise ValueError(f"{len(set(groups))} groups cannot fill {k} folds: use fewer folds")
    fold = [k - 1] * len(labels)
    left = list(range(len(labels)))
    for f in range(k - 1):
        share = 1 / (k - f)
        sides = split_by_group(
            [labels[i] for i in left],
            [groups[i] for i in left],
            {"train": 1 - share, "val": 0.0, "test": share},
            seed,
            proportional=True,
        )
        for i, side in zip(left, sides):
            if side == "test":
                fold[i] = f
        left = [i for i, side in zip(left, sides) if side != "test"]
    return fold


def fold_sides(
    labels: Sequence[str],
    groups: Sequence[Hashable],
    folds: Sequence[int],
    fold: int,
    fractions: dict[str, float],
    seed: int,
) -> list[str]:
    """The side of each item when ``fold`` is tested: its items ``test``, the
    others ``train`` or ``val`` in the proportions of ``fractions``' train and
    val (whole groups, each class spread evenly)."""
    rest = [i for i, f in enumerate(folds) if f != fold]
    learn = fractions["train"] + fractions["val"]
    sides = split_by_group(
        [labels[i] for i in rest],
        [groups[i] for i in rest],
        {"train": fractions["train"] / learn, "val": fractions["val"] / learn, "test": 0.0},
        seed,
        proportional=True,
    )
    out = ["test"] * len(labels)
    for i, side in zip(rest, sides):
        out[i] = side
    return out
