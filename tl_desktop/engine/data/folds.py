"""Grouped, stratified folds: every group wholly inside one fold, classes balanced as far as groups allow.

scikit-learn's ``StratifiedGroupKFold`` does the assignment. A sample without a group is its own group.
Folds depend only on the samples (sorted by path), ``k`` and the seed, never on the order given.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from tl_desktop.engine.data.dataset import Sample
from tl_desktop.engine.data.scanning import DataError


def group_of(sample: Sample) -> str:
    """The sample's group; a sample without one is a group by itself."""
    return sample.group or f"file:{sample.path}"


def grouped_folds(samples: Sequence[Sample], k: int, seed: int) -> list[tuple[list[Sample], list[Sample]]]:
    """``k`` (training part, held-out part) pairs; each sample is held out exactly once."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    ordered = sorted(samples, key=lambda s: s.path)
    groups = [group_of(s) for s in ordered]
    if len(set(groups)) < k:
        raise DataError(f"{k} folds need at least {k} groups of images; there are {len(set(groups))}. "
                        "Use fewer folds or add images.")
    labels = np.array([s.label for s in ordered])
    # Stratification needs every class in at least k groups; when a class has fewer, sklearn warns and
    # balances what it can, which is what is wanted here.
    # With no class holding k images stratifying is impossible: groups alone decide.
    stratify = int(np.bincount(labels).max()) >= k
    splitter = (StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed % 2**32) if stratify
                else GroupKFold(n_splits=k, shuffle=True, random_state=seed % 2**32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parts = list(splitter.split(np.zeros(len(ordered)), labels, groups))
    return [([ordered[i] for i in train], [ordered[i] for i in held]) for train, held in parts]
