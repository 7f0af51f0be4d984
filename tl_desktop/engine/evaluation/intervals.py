"""95% intervals for every metric, each by a method that cannot collapse to a point.

- Proportions (accuracy, per-class recall/sensitivity, precision/PPV, specificity, NPV): Wilson
  score intervals (scipy). They are right at 0 of n and n of n (15 of 15 gives 79.6%–100%) and never
  of zero width for n >= 1; a percentile bootstrap says "100% (100–100%)" there.
- AUC of one class against the rest: DeLong's variance, with the interval built on the logit scale
  so that it stays inside 0–1 (Pohar Perme & Manevski 2018 found this the reliable choice). DeLong's
  variance is zero when the classes are completely separated (AUC 1 or 0) or every score is tied,
  and undefined with fewer than two positives or negatives; there the Hanley–McNeil variance is
  inverted as a score interval — the AUC's analogue of Wilson's interval — which keeps its width.
- Balanced accuracy, F1 and the macro AUC of three or more classes: the seeded percentile bootstrap
  of :mod:`bootstrap`, reported as not estimable where it would be a point. For two classes the macro
  AUC is the AUC of either class, so it takes that class's DeLong interval.

When images come in groups (several images of one patient, field or plant), images of a group
resemble each other and the methods above, which take them as independent, give intervals that are
too narrow. With groups every interval accounts for them:

- Proportions: the Wilson score interval on an effective sample size n / deff, the design-effect
  correction of Korn & Graubard (1998, Survey Methodology 24:193–201), with deff the design effect
  of the ratio estimator over the k groups. The effective size is kept between k and n: never more
  than the images (deff >= 1), never fewer than the groups (each group is worth at least one
  image; the within-group correlation cannot exceed 1). Where deff is undefined because every
  image agrees (all right, all wrong) the worst case is taken, one image's worth per group: 15 of
  15 images of 3 patients get Wilson's interval for 3 of 3. Dean & Pagano (2015, J. Survey
  Statistics and Methodology 3:484–503) found Wilson's interval on the effective sample size to
  hold its coverage in clustered samples. Korn & Graubard's further degrees-of-freedom shrinkage
  (z / t_{k-1})^2 is not applied: with 2–4 groups it stretches even an interval where every group
  agrees to nearly 0–100%, below what the groups as independent units already give. A cluster
  bootstrap was not chosen for proportions: it collapses to a point when every group agrees
  ("100% (100–100%)"), exactly the case a clinician must not read as certainty.
- AUC: Obuchowski's (1997, Biometrics 53:567–578) clustered form of DeLong's variance (it equals
  DeLong's when every image is its own group), on the logit scale; where it is zero or undefined
  the Hanley–McNeil score interval counts groups instead of images.
- Balanced accuracy, F1 and the macro AUC: a cluster bootstrap that draws whole groups
  (:mod:`bootstrap`).

With all images in one group nothing can be said about another group: "interval not estimable".
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from tl_desktop.engine.evaluation.bootstrap import bootstrap_intervals, cluster_numbers
from tl_desktop.engine.evaluation.metrics import Interval, Metrics

LEVEL = 0.95
WILSON = "wilson"
WILSON_DESIGN_EFFECT = "wilson_design_effect"
DELONG = "delong_logit"
OBUCHOWSKI = "obuchowski_logit"
HANLEY_MCNEIL = "hanley_mcneil_score"
_EDGE = 1e-12


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson_interval(successes: int, trials: int, level: float = LEVEL) -> Interval:
    """Wilson score interval of ``successes`` out of ``trials``; undefined (None bounds) for 0 trials."""
    if trials <= 0:
        return Interval(None, None, level, value=None, method=WILSON, note="no images to count")
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=level, method="wilson")
    value = successes / trials
    # scipy's bounds can miss 0 or 1 by a rounding error; the estimate is always inside.
    return Interval(min(float(ci.low), value), max(float(ci.high), value), level, value=value, method=WILSON)


def _wilson_bounds(value: float, trials: float, z: float) -> tuple[float, float]:
    """Wilson's score bounds for a proportion over a possibly fractional (effective) number of trials;
    scipy's ``binomtest`` takes whole counts only."""
    z2n = z * z / trials
    centre = (value + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * np.sqrt(value * (1 - value) / trials + z2n / (4 * trials))
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def clustered_wilson_interval(successes: np.ndarray, members: np.ndarray, clusters: np.ndarray,
                              level: float = LEVEL) -> Interval:
    """Wilson interval of the share of ``successes`` among ``members`` (one flag each per image) when
    images come in groups (``clusters``: a group number per image), on Korn & Graubard's effective
    sample size kept between the number of groups and of images (see the module text)."""
    members = np.asarray(members, dtype=bool)
    trials = int(members.sum())
    if trials == 0:
        return Interval(None, None, level, value=None, method=WILSON_DESIGN_EFFECT, note="no images to count")
    ids, count = cluster_numbers(np.asarray(clusters)[members], trials)
    hits = np.asarray(successes, dtype=bool)[members]
    value = float(hits.mean())
    if count < 2:
        return Interval(None, None, level, value=value, method=WILSON_DESIGN_EFFECT, groups=count,
                        note=f"all {trials} images are from one group")
    per_group = np.bincount(ids, weights=hits.astype(float), minlength=count)
    size = np.bincount(ids, minlength=count)
    between = count / (count - 1) * float(((per_group - value * size) ** 2).sum()) / trials ** 2
    independent = value * (1 - value) / trials
    if independent == 0:  # every image agrees, so the design effect is undefined: one image's worth per group
        effective = float(count)
    elif between == 0:  # every group has the same share: no clustering to correct for
        effective = float(trials)
    else:
        effective = trials * independent / between
    low, high = _wilson_bounds(value, min(float(trials), max(float(count), effective)), _z(level))
    return Interval(min(low, value), max(high, value), level, value=value, method=WILSON_DESIGN_EFFECT, groups=count)


def _components(scores: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: for each positive the share of negatives scored below it, and
    for each negative the share of positives scored above it (ties count half)."""
    from scipy.stats import rankdata

    x, y = scores[positives], scores[~positives]
    m, n = x.size, y.size
    ranks = rankdata(np.r_[x, y])
    v10 = (ranks[:m] - rankdata(x)) / n
    v01 = 1.0 - (ranks[m:] - rankdata(y)) / m
    return v10, v01


def auc_interval(scores: np.ndarray, positives: np.ndarray, level: float = LEVEL,
                 clusters: np.ndarray | None = None) -> Interval:
    """Interval of the one-vs-rest AUC: DeLong on the logit scale (with ``clusters``, a group number per
    image, Obuchowski's clustered form of it), or the Hanley–McNeil score interval."""
    scores = np.asarray(scores, dtype=float)
    positives = np.asarray(positives, dtype=bool)
    method = DELONG if clusters is None else OBUCHOWSKI
    m = int(positives.sum())
    n = positives.size - m
    if m == 0 or n == 0:
        return Interval(None, None, level, value=None, method=method, note="needs images of the class and others")
    # Without groups every image is a group of its own, where Obuchowski's variance is DeLong's.
    ids, count = (np.arange(positives.size), positives.size) if clusters is None else \
        cluster_numbers(clusters, positives.size)
    groups = None if clusters is None else count
    v10, v01 = _components(scores, positives)
    auc = float(v10.mean())
    with_pos, with_neg, variance = _clustered_variance(v10, v01, positives, ids, count, auc)
    if _EDGE < auc < 1 - _EDGE and variance > 0:
        z = _z(level)
        centre = np.log(auc / (1 - auc))
        half = z * np.sqrt(variance) / (auc * (1 - auc))
        low, high = 1 / (1 + np.exp(-(centre - half))), 1 / (1 + np.exp(-(centre + half)))
        return Interval(min(float(low), auc), max(float(high), auc), level, value=auc, method=method, groups=groups)
    unit, name = ("images", "DeLong's variance") if clusters is None else ("groups", "the clustered variance")
    if with_pos < 2 or with_neg < 2:
        why = f"fewer than two {unit} on one side, so {name} is undefined"
    elif auc <= _EDGE or auc >= 1 - _EDGE:
        why = f"the classes are completely separated, so {name} is zero"
    else:
        why = f"{'every score is tied' if clusters is None else 'the groups do not vary'}, so {name} is zero"
    # Counted in groups, not images, where there are groups.
    interval = hanley_mcneil_score_interval(auc, with_pos, with_neg, level)
    interval.note, interval.groups = why, groups
    return interval


def _clustered_variance(v10: np.ndarray, v01: np.ndarray, positives: np.ndarray, ids: np.ndarray, count: int,
                        auc: float) -> tuple[int, int, float]:
    """Groups holding positives, groups holding negatives, and Obuchowski's (1997) variance of the AUC
    (0 with fewer than two groups on a side)."""
    m, n = v10.size, v01.size
    pos_size, neg_size = np.bincount(ids[positives], minlength=count), np.bincount(ids[~positives], minlength=count)
    d10 = np.bincount(ids[positives], weights=v10, minlength=count) - pos_size * auc
    d01 = np.bincount(ids[~positives], weights=v01, minlength=count) - neg_size * auc
    with_pos, with_neg = int((pos_size > 0).sum()), int((neg_size > 0).sum())
    if with_pos < 2 or with_neg < 2:
        return with_pos, with_neg, 0.0
    s10 = with_pos / ((with_pos - 1) * m) * float((d10 ** 2).sum())
    s01 = with_neg / ((with_neg - 1) * n) * float((d01 ** 2).sum())
    s11 = count / (count - 1) * float((d10 * d01).sum())
    return with_pos, with_neg, s10 / m + s01 / n + 2 * s11 / (m * n)


def _hanley_mcneil_variance(theta: float, m: int, n: int) -> float:
    """Hanley & McNeil (1982): Q1 = A/(2-A) and Q2 = 2A^2/(1+A), written in factored form."""
    spread = 1 + (m - 1) * (1 - theta) / (2 - theta) + (n - 1) * theta / (1 + theta)
    return theta * (1 - theta) * spread / (m * n)


def hanley_mcneil_score_interval(auc: float, m: int, n: int, level: float = LEVEL) -> Interval:
    """Every AUC ``t`` with ``(auc - t)^2 <= z^2 * Var_HM(t)``, like Wilson's interval for a proportion.

    The variance is evaluated at each candidate ``t``, not at the estimate, so an AUC of 1 (where the
    estimated variance is 0) still gets a lower bound below 1. ``m`` positives, ``n`` negatives.
    """
    from scipy.optimize import brentq

    z2 = _z(level) ** 2

    def excess(t: float) -> float:
        # (auc - t)^2 - z^2 Var(t), divided by t(1 - t) > 0 so that the roots at 0 and 1 disappear.
        gap = (auc - t) ** 2
        spread = _hanley_mcneil_variance(t, m, n) / (t * (1 - t)) if 0 < t < 1 else \
            (1 + (n - 1) / 2 if t >= 1 else 1 + (m - 1) / 2) / (m * n)
        return (gap / (t * (1 - t)) if gap else 0.0) - z2 * spread

    low = 0.0 if auc <= _EDGE else float(brentq(excess, _EDGE, auc))
    high = 1.0 if auc >= 1 - _EDGE else float(brentq(excess, auc, 1 - _EDGE))
    return Interval(min(low, auc), max(high, auc), level, value=auc, method=HANLEY_MCNEIL)


def _class_intervals(result: Metrics, labels: np.ndarray, predicted: np.ndarray, probs: np.ndarray,
                     clusters: np.ndarray | None, level: float) -> dict[str, dict[str, Interval]]:
    found = {}
    for c, row in enumerate(result.per_class):
        truly, said = labels == c, predicted == c
        found[row.name] = {"precision": _share(truly, said, clusters, level),
                           "recall": _share(said, truly, clusters, level),
                           "specificity": _share(~said, ~truly, clusters, level),
                           "auc": auc_interval(probs[:, c], truly, level, clusters)}
    return found


def _share(successes: np.ndarray, members: np.ndarray, clusters: np.ndarray | None, level: float) -> Interval:
    if clusters is None:
        return wilson_interval(int((successes & members).sum()), int(members.sum()), level)
    return clustered_wilson_interval(successes, members, clusters, level)


def _binary_intervals(result: Metrics, labels: np.ndarray, predicted: np.ndarray, clusters: np.ndarray | None,
                      level: float) -> dict[str, Interval]:
    if result.binary is None:
        return {}
    p = result.classes.index(result.binary.positive_class)
    truly, said = labels == p, predicted == p
    return {"sensitivity": _share(said, truly, clusters, level), "specificity": _share(~said, ~truly, clusters, level),
            "ppv": _share(truly, said, clusters, level), "npv": _share(~truly, ~said, clusters, level)}


def metric_intervals(result: Metrics, labels: np.ndarray, predicted: np.ndarray, probs: np.ndarray,
                     positive_index: int | None, n_bootstrap: int, seed: int, level: float = LEVEL,
                     groups: np.ndarray | list | None = None
                     ) -> tuple[dict[str, Interval], dict[str, dict[str, Interval]]]:
    """Headline and per-class intervals of ``result``, each by the method the module text gives;
    ``groups`` (one id per image) for images that come in groups."""
    classes = list(result.classes)
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    clusters = None if groups is None else cluster_numbers(groups, labels.size)[0]
    per_class = _class_intervals(result, labels, predicted, probs, clusters, level)
    two_classes = len(classes) == 2
    headline_keys = ("balanced_accuracy", "macro_f1") + (() if two_classes else ("macro_auc",))
    estimates = {key: result.headline()[key] for key in headline_keys}
    estimates["f1"] = [row.f1 for row in result.per_class]
    booted, booted_classes = bootstrap_intervals(
        labels, predicted, probs, classes, positive_index, n_bootstrap, seed, groups=clusters, estimates=estimates,
        headline_keys=headline_keys, class_keys=("f1",), level=level)
    for name, found in booted_classes.items():
        per_class[name].update(found)
    every = np.ones(labels.size, dtype=bool)
    headline = {"accuracy": _share(labels == predicted, every, clusters, level), **booted}
    if two_classes:
        # With two classes both one-vs-rest AUCs rank the same pairs: the macro AUC is either of them.
        auc, value = per_class[classes[1]]["auc"], result.macro_auc
        bounds = (min(auc.low, value), max(auc.high, value)) if auc.estimable and value is not None else (None, None)
        headline["macro_auc"] = Interval(*bounds, level, value=value, method=auc.method, note=auc.note,
                                         groups=auc.groups)
    headline.update(_binary_intervals(result, labels, predicted, clusters, level))
    return {key: headline[key] for key in result.headline() if key in headline}, per_class
