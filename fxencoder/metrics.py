"""Evaluation metrics of an audio-effects encoder: disentanglement and style retrieval.

The paper (Koo et al., ICASSP 2023, Table 1) reports two disentanglement figures with the
effect parameters as the generative factors: **DCIMIG** (Sepliarskaia, Kiseleva & de Rijke,
2019) and **DCI random-forest explicitness** (Eastwood & Williams, ICLR 2018, as the review of
Carbonneau, Zaidi et al. 2020/2022 names and computes it). Issue 8 adds nearest-neighbour
**style retrieval across songs**. Each is defined exactly in its function's docstring.

Inputs are array-likes: NumPy arrays, lists or torch tensors (detached and copied to the CPU;
this module never imports torch). Codes are ``(N, D)`` (one row per item, e.g. an embedding),
factors ``(N, K)`` (the known effect parameters of each item). Everything is NumPy; scikit-learn
is needed only by :func:`dci` / :func:`dci_explicitness` and imported there.

Conventions:

* Entropies and mutual informations are plug-in (maximum-likelihood) estimates from the
  contingency table of two discretized variables, in **nats** (natural log), the same
  estimate as ``sklearn.metrics.mutual_info_score``.
* Discretization (:func:`discretize`), per column: a column with at most ``n_bins`` distinct
  values is categorical (one bin per value); otherwise ``binning="quantile"`` (default) puts
  the values into ``n_bins`` equal-frequency bins by mid-rank (``bin = ⌊B·(r − ½)/N⌋`` with
  ``r`` the average 1-based rank, ties shared, so tied values fall in one bin and any strictly
  monotone transform of a column gives the same partition), and ``binning="uniform"`` into
  ``n_bins`` equal-width bins between the column's min and max (``np.histogram``'s bins, as
  disentanglement_lib and the Ubisoft La Forge implementations do after min-max scaling).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = [
    "dci",
    "dci_explicitness",
    "dcimig",
    "discrete_entropy",
    "discretize",
    "mutual_information_matrix",
    "retrieval_bootstrap",
    "retrieval_correct",
    "retrieval_top1",
]

_EPS = 1e-12


def _as_array(x: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """A float64 (or label) NumPy copy of an array-like or torch tensor."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if ndim is not None:
        if ndim == 2 and arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != ndim:
            raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    return arr


def _as_matrix(x: Any, name: str) -> np.ndarray:
    arr = _as_array(x, name, ndim=2).astype(np.float64)
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} needs at least 2 rows and 1 column, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return arr


def _check_rows(codes: np.ndarray, factors: np.ndarray) -> None:
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"codes and factors must have the same number of rows, got {codes.shape[0]} "
            f"and {factors.shape[0]}"
        )


# ------------------------------------------------------------------------------------------------
# Discretization, entropy, mutual information
# ------------------------------------------------------------------------------------------------
def discretize(
    values: Any, n_bins: int = 20, binning: Literal["quantile", "uniform"] = "quantile"
) -> np.ndarray:
    """Discretize each column into at most ``n_bins`` bins (labels ``0 … n_bins − 1``).

    A column with at most ``n_bins`` distinct values is treated as categorical: label ``i`` is
    its ``i``-th smallest value. Otherwise:

    * ``"quantile"``: equal-frequency bins by mid-rank, ``bin = ⌊B·(r − ½)/N⌋`` where ``r`` is
      the average 1-based rank of the value among the ``N`` values of the column (ties share a
      rank, hence a bin). Invariant under any strictly increasing transform of the column; a
      strictly decreasing one mirrors the labels (same partition, same entropies and MIs).
    * ``"uniform"``: equal-width bins over ``[min, max]``, ``bin = min(⌊B·(x − min)/(max −
      min)⌋, B − 1)``, i.e. ``np.histogram(x, B)``'s bins.

    Args:
        values: ``(N,)`` or ``(N, K)`` array-like (NumPy, list or torch tensor), finite.
        n_bins: ``B``, the number of bins, at least 2.
        binning: ``"quantile"`` or ``"uniform"``.

    Returns:
        ``(N, K)`` int64 labels.
    """
    x = _as_matrix(values, "values")
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    if binning not in ("quantile", "uniform"):
        raise ValueError(f"binning must be 'quantile' or 'uniform', got {binning!r}")
    n = x.shape[0]
    out = np.empty(x.shape, dtype=np.int64)
    for k in range(x.shape[1]):
        col = x[:, k]
        uniq, inverse, counts = np.unique(col, return_inverse=True, return_counts=True)
        if len(uniq) <= n_bins:
            out[:, k] = inverse
        elif binning == "quantile":
            below = np.concatenate([[0], np.cumsum(counts)[:-1]])  # values strictly smaller
            midrank = below + (counts + 1) / 2.0  # average 1-based rank of each distinct value
            labels = np.floor(n_bins * (midrank - 0.5) / n).astype(np.int64)
            out[:, k] = np.minimum(labels, n_bins - 1)[inverse]
        else:
            lo, hi = col.min(), col.max()
            labels = np.floor(n_bins * (col - lo) / (hi - lo)).astype(np.int64)
            out[:, k] = np.clip(labels, 0, n_bins - 1)
    return out


def _labels(x: Any, name: str) -> np.ndarray:
    arr = _as_array(x, name, ndim=2)
    if not np.issubdtype(arr.dtype, np.integer) or (arr.size and arr.min() < 0):
        raise ValueError(f"{name} must hold non-negative integer labels (see discretize)")
    return arr.astype(np.int64)


def discrete_entropy(labels: Any) -> np.ndarray:
    """Plug-in entropy of each column of discrete labels, in nats.

    ``H(v) = −Σ_a p(a) ln p(a)`` with ``p(a)`` the fraction of rows with label ``a``.

    Args:
        labels: ``(N,)`` or ``(N, K)`` non-negative integer labels.

    Returns:
        ``(K,)`` float64.
    """
    lab = _labels(labels, "labels")
    n = lab.shape[0]
    out = np.empty(lab.shape[1])
    for k in range(lab.shape[1]):
        p = np.bincount(lab[:, k]) / n
        p = p[p > 0]
        out[k] = float(-(p * np.log(p)).sum())
    return out


def _one_hot(lab: np.ndarray, n_labels: np.ndarray) -> np.ndarray:
    """``(N, Σ_k L_k)`` one-hot blocks of each column's labels."""
    offsets = np.concatenate([[0], np.cumsum(n_labels)[:-1]])
    hot = np.zeros((lab.shape[0], int(n_labels.sum())))
    rows = np.arange(lab.shape[0])
    for k in range(lab.shape[1]):
        hot[rows, offsets[k] + lab[:, k]] = 1.0
    return hot


def mutual_information_matrix(codes_labels: Any, factor_labels: Any) -> np.ndarray:
    """Plug-in mutual information between every discretized code and factor, in nats.

    ``I(z_j; v_k) = Σ_{a,b} p(a, b) ln(p(a, b) / (p(a) p(b)))`` with ``p`` the empirical
    frequencies of the pairs of labels (the contingency table), as
    ``sklearn.metrics.mutual_info_score``. The tables of all pairs come from one product of
    one-hot matrices (in blocks of codes), not a loop over pairs.

    Args:
        codes_labels: ``(N, D)`` non-negative integer labels (:func:`discretize` of the codes).
        factor_labels: ``(N, K)`` non-negative integer labels.

    Returns:
        ``(D, K)`` float64, each entry in ``[0, min(H(z_j), H(v_k))]``.
    """
    zc = _labels(codes_labels, "codes_labels")
    vf = _labels(factor_labels, "factor_labels")
    _check_rows(zc, vf)
    n = zc.shape[0]
    lv = vf.max(0) + 1
    hot_v = _one_hot(vf, lv)  # (N, Σ L_v)
    pv = hot_v.sum(0) / n
    v_off = np.concatenate([[0], np.cumsum(lv)])
    out = np.empty((zc.shape[1], vf.shape[1]))
    block = 64
    for start in range(0, zc.shape[1], block):
        sub = zc[:, start : start + block]
        lz = sub.max(0) + 1
        hot_z = _one_hot(sub, lz)
        pz = hot_z.sum(0) / n
        joint = (hot_z.T @ hot_v) / n  # (Σ L_z, Σ L_v)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = joint / (pz[:, None] * pv[None, :])
            terms = np.where(joint > 0, joint * np.log(np.where(joint > 0, ratio, 1.0)), 0.0)
        z_off = np.concatenate([[0], np.cumsum(lz)])
        # Sum each (code, factor) block of the table.
        rows = np.add.reduceat(terms, z_off[:-1], axis=0)
        out[start : start + sub.shape[1]] = np.add.reduceat(rows, v_off[:-1], axis=1)
    return np.maximum(out, 0.0)  # rounding can make an exact 0 slightly negative


# ------------------------------------------------------------------------------------------------
# DCIMIG
# ------------------------------------------------------------------------------------------------
def dcimig(
    codes: Any,
    factors: Any,
    n_bins: int = 20,
    binning: Literal["quantile", "uniform"] = "quantile",
    normalization: Literal["sum", "mean"] = "sum",
) -> float:
    """DCIMIG (Sepliarskaia, Kiseleva & de Rijke, "How to not measure disentanglement" /
    "Evaluating disentangled representations", arXiv:1910.05587, 2019).

    With ``I_jk = I(z_j; v_k)`` the mutual information between discretized code ``j`` and
    factor ``k`` (:func:`mutual_information_matrix`, nats):

    1. for each code dimension ``j``: ``k*_j = argmax_k I_jk`` and the gap
       ``R_j = I_{j,k*_j} − max_{k ≠ k*_j} I_jk`` (``R_j = I_{j,k*_j}`` when ``K = 1``);
    2. for each factor ``k``: ``S_k = max_{j : k*_j = k} R_j`` (0 if no dimension picks it);
    3. ``normalization="sum"`` (the paper's, and the Ubisoft La Forge implementation of
       Carbonneau, Zaidi et al.): ``DCIMIG = Σ_k S_k / Σ_k H(v_k)``;
       ``normalization="mean"``: ``mean_k S_k / H(v_k)``. Both are in ``[0, 1]`` and equal
       when every factor has the same entropy (e.g. continuous factors in ``n_bins`` quantile
       bins).

    It is 1 when each factor is captured by one dimension that carries nothing of the others,
    and drops when a dimension mixes factors (its gap shrinks) or a factor is not captured.

    Binning (see :func:`discretize`): codes and factors are discretized per column into
    ``n_bins`` bins, equal-frequency by default, equal-width with ``binning="uniform"``;
    factors with at most ``n_bins`` distinct values (on/off flags, categories) stay
    categorical. The plug-in MI is biased upwards by about ``(B_z − 1)(B_v − 1)/(2N)`` nats,
    so use ``N`` well above ``n_bins²`` (the bias largely cancels in the gaps).

    Args:
        codes: ``(N, D)`` codes (embeddings), array-like or tensor.
        factors: ``(N, K)`` generative factors (effect parameters).
        n_bins: bins per column, at least 2 (20: disentanglement_lib's MIG default).
        binning: ``"quantile"`` or ``"uniform"``.
        normalization: ``"sum"`` (the paper's) or ``"mean"``.

    Returns:
        DCIMIG in ``[0, 1]``.

    Raises:
        ValueError: mismatched rows, non-finite values, or constant factors (zero entropy).
    """
    z = _as_matrix(codes, "codes")
    v = _as_matrix(factors, "factors")
    _check_rows(z, v)
    if normalization not in ("sum", "mean"):
        raise ValueError(f"normalization must be 'sum' or 'mean', got {normalization!r}")
    zl = discretize(z, n_bins, binning)
    vl = discretize(v, n_bins, binning)
    h = discrete_entropy(vl)
    if normalization == "mean" and (h <= 0).any():
        raise ValueError(f"factors {np.flatnonzero(h <= 0).tolist()} are constant (entropy 0)")
    if h.sum() <= 0:
        raise ValueError("every factor is constant (entropy 0)")
    mi = mutual_information_matrix(zl, vl)
    s = _dcimig_gaps(mi)
    if normalization == "sum":
        return float(s.sum() / h.sum())
    return float(np.mean(s / h))


def _dcimig_gaps(mi: np.ndarray) -> np.ndarray:
    """``S_k`` of DCIMIG from the ``(D, K)`` mutual information matrix."""
    n_codes, n_factors = mi.shape
    best = mi.argmax(1)
    top = mi[np.arange(n_codes), best]
    if n_factors > 1:
        second = np.partition(mi, n_factors - 2, axis=1)[:, n_factors - 2]
    else:
        second = np.zeros(n_codes)
    gap = top - second
    s = np.zeros(n_factors)
    np.maximum.at(s, best, gap)
    return s


# ------------------------------------------------------------------------------------------------
# DCI (Eastwood & Williams) with random forests
# ------------------------------------------------------------------------------------------------
def _entropy_base(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of a probability matrix in log base ``base`` (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(-1) / np.log(base)


def _split(
    n: int, test_fraction: float, seed: int, groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices: random rows, or whole groups when ``groups`` is given."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    if groups is None:
        perm = rng.permutation(n)
        n_test = min(max(1, round(test_fraction * n)), n - 1)
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])
    uniq = np.unique(groups)
    if len(uniq) < 2:
        raise ValueError("a split by groups needs at least 2 distinct groups")
    perm = rng.permutation(uniq)
    n_test = min(max(1, round(test_fraction * len(uniq))), len(uniq) - 1)
    test = np.isin(groups, perm[:n_test])
    return np.flatnonzero(~test), np.flatnonzero(test)


def dci(
    codes: Any,
    factors: Any,
    *,
    test_fraction: float = 0.25,
    groups: Any = None,
    n_estimators: int = 100,
    seed: int = 0,
    forest_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """DCI: disentanglement, completeness and informativeness (explicitness) with random forests.

    After Eastwood & Williams, "A framework for the quantitative evaluation of disentangled
    representations", ICLR 2018. One ``sklearn.ensemble.RandomForestRegressor`` per factor
    ``k`` predicts ``v_k`` from all the codes; it is fitted on a training split and its
    impurity-based feature importances (``feature_importances_``, summing to 1 per factor)
    form the importance matrix ``R`` ``(D, K)``.

    * **Disentanglement**: ``P_jk = R_jk / Σ_k R_jk``, ``D_j = 1 − H_K(P_j·)`` (entropy in log
      base ``K``), ``D = Σ_j ρ_j D_j`` with ``ρ_j = Σ_k R_jk / Σ_jk R_jk``.
    * **Completeness**: ``P̃_jk = R_jk / Σ_j R_jk``, ``C_k = 1 − H_D(P̃_·k)`` (log base ``D``),
      ``C = mean_k C_k``.
    * **Informativeness**, reported by Koo et al. (Table 1) and Carbonneau et al. as
      *explicitness*: ``E_k = max(0, R²_k)`` with ``R²_k = 1 − MSE_test,k / Var_test(v_k)``
      the coefficient of determination on the **held-out** split (``sklearn.metrics.r2_score``),
      and ``E = mean_k E_k``. Why this form: it is ``1 − normalised error`` as Eastwood &
      Williams ask, 1 for perfect prediction and 0 for predicting the mean; for a factor
      uniform on its range it equals the Ubisoft La Forge implementation's
      ``max(0, 1 − 12·MSE)`` on min-max-scaled factors (``1/12`` is that uniform's variance),
      and it stays meaningful for factors of any distribution. Unlike that implementation
      (which scores the forest on its own training data, where a forest fitted to noise still
      scores high) it is measured on held-out rows, so codes that carry nothing of a factor
      score about 0.

    ``D`` is 1 by convention when ``K = 1``; ``C`` when ``D = 1``.

    Args:
        codes: ``(N, D)`` codes.
        factors: ``(N, K)`` factors (continuous or discrete values, regressed as numbers).
        test_fraction: fraction of the rows (or of the groups) held out, in (0, 1).
        groups: optional ``(N,)`` labels (e.g. song ids): the split then holds out whole
            groups, so that explicitness is measured on unseen songs.
        n_estimators: trees per forest.
        seed: seeds the split and the forests (``random_state = seed + k`` for factor ``k``).
        forest_kwargs: further ``RandomForestRegressor`` arguments (e.g. ``max_depth``,
            ``min_samples_leaf``); ``n_jobs`` defaults to 1.

    Returns:
        A dict: ``"disentanglement"``, ``"completeness"``, ``"informativeness"`` and
        ``"explicitness"`` (the same number) as floats; ``"explicitness_per_factor"`` ``(K,)``,
        ``"importance"`` ``(D, K)`` (``R``), ``"disentanglement_per_code"`` ``(D,)``,
        ``"completeness_per_factor"`` ``(K,)`` as arrays.

    Raises:
        ValueError: mismatched rows, non-finite values, a factor constant on the test split.
    """
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.metrics import r2_score

    z = _as_matrix(codes, "codes")
    v = _as_matrix(factors, "factors")
    _check_rows(z, v)
    grp = None if groups is None else _as_array(groups, "groups").reshape(-1)
    if grp is not None and len(grp) != z.shape[0]:
        raise ValueError(f"groups must have {z.shape[0]} entries, got {len(grp)}")
    train, test = _split(z.shape[0], test_fraction, seed, grp)
    n_codes, n_factors = z.shape[1], v.shape[1]
    kwargs = {"n_jobs": 1, **(forest_kwargs or {})}
    importance = np.zeros((n_codes, n_factors))
    explicit = np.zeros(n_factors)
    for k in range(n_factors):
        if np.ptp(v[test, k]) == 0:
            raise ValueError(f"factor {k} is constant on the test split: R² is undefined")
        forest = RandomForestRegressor(n_estimators=n_estimators, random_state=seed + k, **kwargs)
        forest.fit(z[train], v[train, k])
        importance[:, k] = forest.feature_importances_
        explicit[k] = max(0.0, float(r2_score(v[test, k], forest.predict(z[test]))))
    total = importance.sum()
    code_weight = importance.sum(1)
    if n_factors > 1:
        p = importance / np.maximum(code_weight[:, None], _EPS)
        d_code = np.where(code_weight > 0, 1.0 - _entropy_base(p, n_factors), 0.0)
    else:
        d_code = np.where(code_weight > 0, 1.0, 0.0)
    rho = code_weight / total if total > 0 else np.zeros(n_codes)
    factor_weight = importance.sum(0)
    if n_codes > 1:
        pt = (importance / np.maximum(factor_weight[None, :], _EPS)).T
        c_factor = np.where(factor_weight > 0, 1.0 - _entropy_base(pt, n_codes), 0.0)
    else:
        c_factor = np.where(factor_weight > 0, 1.0, 0.0)
    explicitness = float(explicit.mean())
    return {
        "disentanglement": float((rho * d_code).sum()),
        "completeness": float(c_factor.mean()),
        "informativeness": explicitness,
        "explicitness": explicitness,
        "explicitness_per_factor": explicit,
        "importance": importance,
        "disentanglement_per_code": d_code,
        "completeness_per_factor": c_factor,
    }


def dci_explicitness(codes: Any, factors: Any, **kwargs: Any) -> float:
    """DCI random-forest explicitness (informativeness): ``dci(codes, factors, **kwargs)``'s.

    ``E = mean_k max(0, R²_k)``, held-out ``R²`` of a random forest predicting factor ``k``
    from the codes; see :func:`dci` for the definition and the arguments.
    """
    return float(dci(codes, factors, **kwargs)["explicitness"])


# ------------------------------------------------------------------------------------------------
# Style retrieval across songs
# ------------------------------------------------------------------------------------------------
def _ids(x: Any, name: str, n: int) -> np.ndarray:
    arr = _as_array(x, name).reshape(-1)
    if len(arr) != n:
        raise ValueError(f"{name} must have {n} entries (one per embedding), got {len(arr)}")
    return arr


def retrieval_correct(
    embeddings: Any,
    style_ids: Any,
    song_ids: Any,
    group_ids: Any = None,
    block: int = 1024,
) -> np.ndarray:
    """Per query: is its nearest candidate (cosine) of the same style? 1.0, 0.0 or NaN.

    The candidates of query ``i`` are the items ``j`` with ``song_j ≠ song_i`` (never the
    query's own song, so the same content cannot be matched) and, when ``group_ids`` is given,
    ``group_j = group_i`` (e.g. the same stem type). The nearest is
    ``argmax_j cos(e_i, e_j)`` with ``cos(a, b) = a·b / (‖a‖‖b‖)`` (rows normalised with
    ``‖e‖ + 1e-12``, so an all-zero embedding has similarity 0 to everything); ties go to the
    lowest index. A query without any candidate gets NaN.

    Args:
        embeddings: ``(N, E)`` embeddings.
        style_ids: ``(N,)`` style labels (e.g. the index of the effect draw), any hashable
            NumPy-comparable values.
        song_ids: ``(N,)`` song (content) labels.
        group_ids: optional ``(N,)`` group labels restricting the candidates.
        block: queries handled at once (memory ``block × N``).

    Returns:
        ``(N,)`` float64: 1.0 correct, 0.0 wrong, NaN for a query without candidates.
    """
    e = _as_matrix(embeddings, "embeddings")
    n = e.shape[0]
    style = _ids(style_ids, "style_ids", n)
    song = _ids(song_ids, "song_ids", n)
    group = None if group_ids is None else _ids(group_ids, "group_ids", n)
    e = e / (np.linalg.norm(e, axis=1, keepdims=True) + _EPS)
    out = np.full(n, np.nan)
    for start in range(0, n, block):
        q = slice(start, min(start + block, n))
        sim = e[q] @ e.T  # (b, N)
        allowed = song[q, None] != song[None, :]
        if group is not None:
            allowed &= group[q, None] == group[None, :]
        sim = np.where(allowed, sim, -np.inf)
        nearest = sim.argmax(1)
        has = allowed.any(1)
        hit = (style[nearest] == style[q]).astype(np.float64)
        out[q] = np.where(has, hit, np.nan)
    return out


def retrieval_top1(embeddings: Any, style_ids: Any, song_ids: Any, group_ids: Any = None) -> float:
    """Top-1 style retrieval accuracy across songs (nearest neighbour, cosine).

    The mean of :func:`retrieval_correct` over the queries that have at least one candidate:
    for each query, the nearest item of *another song* (and of the same group, e.g. stem type,
    when ``group_ids`` is given) must have the query's style. Chance is about ``1/n_styles``
    when the styles are balanced. This is issue 8's "style retrieval across songs".

    Args:
        embeddings: ``(N, E)``.
        style_ids: ``(N,)`` style labels.
        song_ids: ``(N,)`` song labels.
        group_ids: optional ``(N,)`` group labels.

    Returns:
        Accuracy in ``[0, 1]``.

    Raises:
        ValueError: no query has a candidate.
    """
    hits = retrieval_correct(embeddings, style_ids, song_ids, group_ids)
    if np.isnan(hits).all():
        raise ValueError("no query has a candidate (one song only, or groups of one song)")
    return float(np.nanmean(hits))


def retrieval_bootstrap(
    embeddings: Any,
    style_ids: Any,
    song_ids: Any,
    group_ids: Any = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Top-1 retrieval accuracy with a bootstrap interval over songs.

    A cluster (song-level) bootstrap: the per-query outcomes ``c_i`` of
    :func:`retrieval_correct` are computed once on all the data (the candidate pool is
    fixed); each of the ``n_boot`` replicates draws ``S`` songs with replacement from the
    ``S`` songs that have queries and takes the accuracy over all the queries of the drawn
    songs, counted with multiplicity: ``acc* = Σ_s m_s A_s / Σ_s m_s n_s`` (``m_s`` the times
    song ``s`` is drawn, ``A_s`` its correct queries, ``n_s`` its queries). Songs, not items,
    are resampled because the items of one song are not independent. The interval is the
    percentile interval ``[q_{(1−level)/2}, q_{(1+level)/2}]`` of the replicates.

    Args:
        embeddings: ``(N, E)``.
        style_ids: ``(N,)`` style labels.
        song_ids: ``(N,)`` song labels.
        group_ids: optional ``(N,)`` group labels (see :func:`retrieval_correct`).
        n_boot: number of bootstrap replicates.
        seed: seed of the ``numpy.random.default_rng`` that draws them.
        level: coverage of the interval (0.95).

    Returns:
        ``(accuracy, low, high)``: the point estimate (:func:`retrieval_top1` on all the data)
        and the interval bounds.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    hits = retrieval_correct(embeddings, style_ids, song_ids, group_ids)
    valid = ~np.isnan(hits)
    if not valid.any():
        raise ValueError("no query has a candidate (one song only, or groups of one song)")
    song = _ids(song_ids, "song_ids", len(hits))[valid]
    _, song_index = np.unique(song, return_inverse=True)
    correct = np.bincount(song_index, weights=hits[valid])
    count = np.bincount(song_index).astype(np.float64)
    n_songs = len(count)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_songs, np.full(n_songs, 1.0 / n_songs), size=n_boot)
    replicates = (draws @ correct) / (draws @ count)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha])
    return float(correct.sum() / count.sum()), float(low), float(high)
