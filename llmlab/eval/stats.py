"""Small, seeded statistics shared by the evaluation tools (numpy only).

- `bootstrap_ci`: percentile bootstrap confidence interval of a statistic.
- `permutation_test`: exact-size Monte Carlo permutation test that group means differ (two-sided),
  or, with `lower=`, that one named group scores lower than the others (one-sided).
- `compare_groups`: per-group means, the largest gap, bootstrap CIs and the permutation p-value
  (what `bias_evaluation` reports).
- `sign_flip_test`: test that per-cluster effects sum to zero (symmetric null), two-sided or
  one-sided, exact for up to 16 clusters, Monte Carlo above; `sign_flip_ci`: the interval of a
  share that test does not reject. Both are for observations that come in correlated clusters
  (the likelihood bias probe's pairs from one story opening), where each cluster is one
  independent unit.
- `adjust_p_values`: Holm-Bonferroni (or Bonferroni) adjusted p-values for a family of tests
  that share one verdict.
- `binary_metrics`, `auroc`, `wilson_interval`: for detectors (safety filter, refusal detector,
  hallucination detector) measured on labelled examples.

Every random procedure takes a `seed` and uses its own `numpy.random.Generator`, so results are
repeatable and never disturb global RNG state.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from llmlab.errors import DataError


def _as_1d(values: Sequence[float] | np.ndarray, name: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise DataError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or infinite values")
    return arr


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` (default: the mean) over `values`.

    `statistic` receives a [n_boot, n] array of resamples and must reduce along axis 1.
    """
    arr = _as_1d(values)
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be in (0, 1), got {confidence}")
    stat = statistic or (lambda x: x.mean(axis=1))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_boot, arr.size))
    boots = np.asarray(stat(arr[idx]), dtype=np.float64)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(boots, [tail, 1 - tail])
    return float(lo), float(hi)


def bootstrap_diff_ci(
    a: Sequence[float], b: Sequence[float], *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a) - mean(b), resampling each group independently."""
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    rng = np.random.default_rng(seed)
    mx = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    my = y[rng.integers(0, y.size, size=(n_boot, y.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(mx - my, [tail, 1 - tail])
    return float(lo), float(hi)


def _max_gap(means: np.ndarray) -> np.ndarray:
    return means.max(axis=-1) - means.min(axis=-1)


def permutation_test(
    groups: Mapping[str, Sequence[float]] | Sequence[Sequence[float]],
    *,
    n_permutations: int = 5000,
    seed: int = 0,
    strata: Mapping[str, Sequence[Any]] | Sequence[Sequence[Any]] | None = None,
    chunk: int = 1000,
    lower: str | None = None,
) -> float:
    """p-value for "all groups share one distribution" against "some group means differ".

    The statistic is the largest gap between group means (max mean - min mean; for two groups
    the two-sided |mean_a - mean_b|). Group labels are shuffled `n_permutations` times; the
    p-value is (1 + #{permuted >= observed}) / (1 + n_permutations), which keeps the test's
    false-positive rate at or below alpha (Phipson & Smyth 2010) and never returns 0.

    `lower` (a key of a mapping `groups`) makes the test one-sided: the alternative is that this
    group scores lower than the others, and the statistic is the mean of the other groups'
    pooled scores minus its mean (a gap the other way gives a p-value near 1, not a small one).

    `strata` (same shape as `groups`) restricts shuffling to within each stratum, e.g. the
    prompt template: scores from different templates are not exchangeable, scores of different
    groups under one template are (under the null of no group effect).
    """
    lists = list(groups.values()) if isinstance(groups, Mapping) else list(groups)
    if len(lists) < 2:
        raise DataError("a permutation test needs at least two groups")
    arrays = [_as_1d(g, "group scores") for g in lists]
    sizes = np.array([a.size for a in arrays])
    pooled = np.concatenate(arrays)
    labels = np.repeat(np.arange(len(arrays)), sizes)
    if lower is None:
        statistic = lambda sums: _max_gap(sums / sizes)  # noqa: E731
    else:
        if not isinstance(groups, Mapping) or lower not in groups:
            raise DataError(f"lower={lower!r} must name one of the groups")
        statistic = _lower_gap(list(groups).index(lower), sizes, float(pooled.sum()))
    observed = float(statistic(np.array([[a.sum() for a in arrays]]))[0])
    strata_idx: list[np.ndarray] | None = None
    if strata is not None:
        if isinstance(strata, Mapping):
            if not isinstance(groups, Mapping) or set(strata) != set(groups):
                raise DataError("strata must name the same groups as the scores")
            s_lists = [strata[k] for k in groups]
        else:
            s_lists = list(strata)
        if [len(s) for s in s_lists] != [a.size for a in arrays]:
            raise DataError("strata must give one stratum per score, group by group")
        flat = np.array([str(x) for s in s_lists for x in s])
        strata_idx = [np.flatnonzero(flat == u) for u in np.unique(flat)]

    rng = np.random.default_rng(seed)
    exceed = 0
    done = 0
    eps = 1e-12 * max(1.0, float(np.abs(pooled).max()))  # ties count as "as extreme"
    while done < n_permutations:
        m = min(chunk, n_permutations - done)
        if strata_idx is None:
            perm = rng.permuted(np.broadcast_to(labels, (m, labels.size)), axis=1)
        else:
            perm = np.empty((m, labels.size), dtype=labels.dtype)
            for idx in strata_idx:
                perm[:, idx] = rng.permuted(np.broadcast_to(labels[idx], (m, idx.size)), axis=1)
        # Per-permutation group sums via one-hot counting: [m, n] x groups.
        sums = np.stack([(np.where(perm == g, pooled, 0.0)).sum(axis=1) for g in range(len(arrays))], axis=1)
        exceed += int(np.count_nonzero(statistic(sums) >= observed - eps))
        done += m
    return (1 + exceed) / (1 + n_permutations)


def _lower_gap(target: int, sizes: np.ndarray, total: float) -> Callable[[np.ndarray], np.ndarray]:
    """The one-sided statistic from per-group sums [m, groups]: the other groups' pooled mean
    minus group `target`'s mean (the grand total does not change under a permutation)."""
    n_target, n_rest = float(sizes[target]), float(sizes.sum() - sizes[target])
    if n_rest == 0:
        raise DataError("a one-sided test needs scores for at least one other group")
    return lambda sums: (total - sums[:, target]) / n_rest - sums[:, target] / n_target


@dataclass
class GroupStats:
    name: str
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


@dataclass
class GroupComparison:
    """What `compare_groups` found. `significant` is p_value < alpha: the two-sided "any difference"
    test of this one comparison, uncorrected for any other test in the same verdict. With a
    `lower_group`, `lower_gap` is the other groups' pooled mean minus its mean (positive: it scores
    lower) and `p_one_sided` tests that direction only."""

    groups: list[GroupStats]
    largest_gap: float
    gap_pair: tuple[str, str]  # (highest-mean group, lowest-mean group)
    gap_ci: tuple[float, float]
    p_value: float
    alpha: float
    significant: bool
    confidence: float
    n_permutations: int
    extra: dict[str, Any] = field(default_factory=dict)
    lower_group: str | None = None
    lower_gap: float | None = None
    p_one_sided: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[list[Any]]:
        """Table rows: group, n, mean, std, CI low, CI high."""
        return [[g.name, g.n, g.mean, g.std, g.ci_low, g.ci_high] for g in self.groups]


def compare_groups(
    scores: Mapping[str, Sequence[float]],
    *,
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_boot: int = 2000,
    n_permutations: int = 5000,
    seed: int = 0,
    strata: Mapping[str, Sequence[Any]] | None = None,
    lower: str | None = None,
) -> GroupComparison:
    """Per-group means with bootstrap CIs, the largest gap with its CI, and a permutation p-value
    (stratified when `strata` gives each score's stratum, e.g. its prompt template). `lower` names
    a group expected to score lower (a stereotype's target): its gap to the other groups and the
    one-sided p-value for that direction are added."""
    if len(scores) < 2:
        raise DataError(f"need scores for at least two groups, got {len(scores)}")
    stats = []
    for i, (name, values) in enumerate(scores.items()):
        arr = _as_1d(values, f"scores of group {name!r}")
        lo, hi = bootstrap_ci(arr, n_boot=n_boot, confidence=confidence, seed=seed + i)
        stats.append(GroupStats(str(name), int(arr.size), float(arr.mean()),
                                float(arr.std(ddof=1)) if arr.size > 1 else 0.0, lo, hi))
    top = max(stats, key=lambda g: g.mean)
    bottom = min(stats, key=lambda g: g.mean)
    gap_ci = bootstrap_diff_ci(scores[top.name], scores[bottom.name], n_boot=n_boot,
                               confidence=confidence, seed=seed + 10_007)
    p = permutation_test(scores, n_permutations=n_permutations, seed=seed, strata=strata)
    one_sided: dict[str, Any] = {}
    if lower is not None:
        rest = np.concatenate([_as_1d(v) for k, v in scores.items() if k != lower])
        one_sided = {"lower_group": lower, "lower_gap": float(rest.mean() - _as_1d(scores[lower]).mean()),
                     "p_one_sided": permutation_test(scores, n_permutations=n_permutations, seed=seed, strata=strata,
                                                     lower=lower)}
    return GroupComparison(
        groups=stats, largest_gap=top.mean - bottom.mean, gap_pair=(top.name, bottom.name), gap_ci=gap_ci,
        p_value=p, alpha=alpha, significant=p < alpha, confidence=confidence, n_permutations=n_permutations,
        **one_sided,
    )


def _sign_patterns(k: int, n_permutations: int, seed: int, exact_max: int) -> tuple[np.ndarray, bool]:
    """All 2**k sign patterns (k <= exact_max), else the identity plus `n_permutations` random
    ones (the identity row makes the Monte Carlo p-value (1 + #exceed) / (1 + n))."""
    if k <= exact_max:
        return (1 - 2 * ((np.arange(2**k)[:, None] >> np.arange(k)) & 1)).astype(np.float64), True
    rng = np.random.default_rng(seed)
    random = rng.integers(0, 2, size=(n_permutations, k)) * 2 - 1
    return np.vstack([np.ones((1, k)), random]).astype(np.float64), False


def sign_flip_test(values: Sequence[float] | np.ndarray, *, n_permutations: int = 10_000, seed: int = 0,
                   exact_max: int = 16, alternative: str = "two-sided") -> float:
    """Sign-flip (randomisation) test that independent cluster effects are symmetric about zero,
    with |sum(values)| as the statistic (`alternative="two-sided"`), or sum(values) for
    "greater" (the effects are positive) and -sum(values) for "less".

    Each value is one cluster's effect (e.g. its stereotyped-preferring pairs minus half its
    pairs). Under the null every sign is equally likely, so the p-value is the share of the
    2**k sign patterns whose |sum| is at least the observed one: enumerated exactly when
    k <= `exact_max`, else `n_permutations` random patterns with (1 + #exceed) / (1 + n), which
    keeps the size at or below alpha. Zero effects are left out (a flip does not change them), and
    with k non-zero effects the smallest possible p-value is 2 / 2**k: five clusters can never be
    significant at 0.05, the honest answer when there are only five independent units (one-sided:
    1 / 2**k).
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise DataError(f"alternative must be two-sided, greater or less, got {alternative!r}")
    arr = _as_1d(values)
    nz = arr[arr != 0]
    if nz.size == 0:
        return 1.0
    eps = 1e-9 * max(1.0, float(np.abs(nz).sum()))  # ties count as "as extreme"
    signs, _ = _sign_patterns(nz.size, n_permutations, seed, exact_max)
    sums = signs @ nz
    observed = float(nz.sum())
    if alternative == "two-sided":
        sums, observed = np.abs(sums), abs(observed)
    elif alternative == "less":
        sums, observed = -sums, -observed
    return float(np.count_nonzero(sums >= observed - eps) / sums.size)


CORRECTIONS = ("holm", "bonferroni")


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Adjusted p-values for m tests in one verdict, in the order given: reject test i at level
    alpha when its adjusted p < alpha, and the chance of any false alarm stays at most alpha.

    "holm" (Holm 1979, step-down): sort the p-values, multiply the j-th smallest (j from 0) by
    m - j, make the sequence non-decreasing and cap it at 1. Never less powerful than
    "bonferroni" (every p times m).
    """
    if method not in CORRECTIONS:
        raise DataError(f"unknown correction {method!r}; choose from {', '.join(CORRECTIONS)}")
    ps = [float(p) for p in p_values]
    if any(not 0 <= p <= 1 for p in ps):
        raise DataError(f"p-values must lie in [0, 1], got {ps}")
    m = len(ps)
    if method == "bonferroni":
        return [min(1.0, p * m) for p in ps]
    out = [0.0] * m
    running = 0.0
    for j, i in enumerate(sorted(range(m), key=lambda i: ps[i])):
        running = max(running, min(1.0, ps[i] * (m - j)))
        out[i] = running
    return out


def sign_flip_ci(successes: Sequence[float] | np.ndarray, sizes: Sequence[float] | np.ndarray, *,
                 confidence: float = 0.95, n_permutations: int = 10_000, seed: int = 0, exact_max: int = 16,
                 resolution: float = 0.005) -> tuple[float, float]:
    """Interval for a share sum(successes) / sum(sizes) measured in independent clusters (one
    count and size each): every share theta on a grid of `resolution` that `sign_flip_test`
    does not reject for the cluster effects successes - theta * sizes. It is the test turned
    round, so it excludes 0.5 exactly when that test rejects 0.5 at 1 - confidence; away from
    0.5 the effects of a 0/1 outcome are not symmetric and the interval is approximate.
    """
    wins, n = _as_1d(successes, "successes"), _as_1d(sizes, "sizes")
    if wins.size != n.size or np.any(n <= 0) or np.any(wins < 0) or np.any(wins > n):
        raise DataError("need one size per count, with 0 <= count <= size")
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be in (0, 1), got {confidence}")
    if wins.size < 2:
        return (0.0, 1.0)
    grid = np.unique(np.concatenate([np.linspace(0, 1, int(round(1 / resolution)) + 1), [wins.sum() / n.sum()]]))
    signs, _ = _sign_patterns(wins.size, n_permutations, seed, exact_max)
    effects = wins[None, :] - grid[:, None] * n[None, :]  # [grid, k]
    observed = np.abs(effects.sum(axis=1))
    eps = 1e-9 * max(1.0, float(n.sum()))
    p = (np.abs(signs @ effects.T) >= observed[None, :] - eps).mean(axis=0)
    kept = grid[p >= 1 - confidence]
    return float(kept.min()), float(kept.max())


def binary_metrics(y_true: Sequence[bool], y_pred: Sequence[bool]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and the confusion counts; positive class = True.

    Precision (recall) is reported as 1.0 when there are no predicted (actual) positives, so a
    detector that is never asked to find anything is not penalised for it; the counts show it.
    """
    t = np.asarray(y_true, dtype=bool)
    p = np.asarray(y_pred, dtype=bool)
    if t.size == 0 or t.shape != p.shape:
        raise DataError(f"need equally long, non-empty label lists (got {t.size} and {p.size})")
    tp = int(np.sum(t & p))
    fp = int(np.sum(~t & p))
    fn = int(np.sum(t & ~p))
    tn = int(np.sum(~t & ~p))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": (tp + tn) / t.size, "precision": precision, "recall": recall, "f1": f1,
            "tp": tp, "fp": fp, "fn": fn, "tn": tn, "n": int(t.size)}


def auroc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative),
    ties counting one half (the Mann-Whitney U statistic, via average ranks)."""
    y = np.asarray(labels, dtype=bool)
    s = _as_1d(scores, "scores")
    if y.size != s.size:
        raise DataError(f"{y.size} labels but {s.size} scores")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise DataError("AUROC needs at least one positive and one negative example")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size)
    sorted_s = s[order]
    # Average ranks over ties (1-based).
    i = 0
    while i < s.size:
        j = i
        while j + 1 < s.size and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (well-behaved at 0 and 1, small n)."""
    if n <= 0:
        return (0.0, 1.0)
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, not 1e-17
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)
