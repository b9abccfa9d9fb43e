"""fxencoder.metrics and fxencoder.features: measured quantities against closed forms.

DCIMIG against its plug-in bias closed form and scikit-learn's mutual information, DCI on
one-to-one / mixed / noise codes, retrieval on constructed cases (the same song never counts,
groups restrict the candidates), the bootstrap over songs, and the baseline features against
what a gain, an imager, an EQ and silence do to them. Small sizes: a few seconds in all.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fxdsp import analysis
from fxdsp import functional as F
from fxencoder import features as fe
from fxencoder import metrics as m

SR = 44100


def _uniform_factors(n: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(size=(n, k))


def _one_to_one_code(v: np.ndarray) -> np.ndarray:
    """A permuted, strictly monotone transform of 4 factors, one dimension per factor."""
    return np.stack([np.exp(3 * v[:, 2]), -(v[:, 0] ** 3), np.tanh(v[:, 3]), 5 * v[:, 1] + 1], 1)


# ------------------------------------------------------------------------------------------------
# Discretization, entropy, mutual information
# ------------------------------------------------------------------------------------------------
def test_quantile_bins_are_equal_frequency_and_monotone_invariant() -> None:
    v = _uniform_factors(2000, 1, 0)[:, 0]
    labels = m.discretize(v, 20)[:, 0]
    assert np.array_equal(np.bincount(labels), np.full(20, 100))  # N/B per bin, exactly
    assert np.array_equal(m.discretize(np.exp(3 * v), 20)[:, 0], labels)
    assert np.array_equal(m.discretize(-(v**3), 20)[:, 0], 19 - labels)  # mirrored
    # Entropy of 20 equal bins: ln 20.
    assert m.discrete_entropy(labels)[0] == pytest.approx(math.log(20), abs=1e-12)
    # Few distinct values stay categorical; uniform bins follow np.histogram.
    flags = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    assert m.discretize(flags, 20)[:, 0].tolist() == [0, 1, 1, 0, 1]
    counts, _ = np.histogram(v, 20)
    assert np.array_equal(np.bincount(m.discretize(v, 20, "uniform")[:, 0], minlength=20), counts)


def test_mutual_information_matches_sklearn() -> None:
    from sklearn.metrics import mutual_info_score

    rng = np.random.default_rng(1)
    v = rng.uniform(size=(1500, 3))
    z = np.stack([v[:, 0] + 0.3 * rng.normal(size=1500), v[:, 1] * v[:, 2], rng.normal(size=1500)])
    z = np.concatenate([z.T, np.round(4 * v[:, :1])], 1)  # a column with 5 values: categorical
    zl, vl = m.discretize(z, 12), m.discretize(v, 9)
    mi = m.mutual_information_matrix(zl, vl)
    ref = np.array([[mutual_info_score(zl[:, j], vl[:, k]) for k in range(3)] for j in range(4)])
    np.testing.assert_allclose(mi, ref, rtol=0, atol=1e-12)
    assert mi[0, 0] > 0.3 and mi[2].max() < 0.05  # dependent vs independent columns


# ------------------------------------------------------------------------------------------------
# DCIMIG
# ------------------------------------------------------------------------------------------------
def test_dcimig_one_to_one_code_is_one_up_to_the_plugin_bias() -> None:
    """Gap = H(v) − I(z; v_other); the plug-in MI of independent 20×20 bins is biased by
    about (B − 1)²/(2N) nats, so DCIMIG ≈ 1 − (B − 1)²/(2N ln B): 0.970 at N = 2000 (measured
    0.965)."""
    n, bins = 2000, 20
    v = _uniform_factors(n, 4, 0)
    z = _one_to_one_code(v)
    expected = 1.0 - (bins - 1) ** 2 / (2 * n * math.log(bins))
    for normalization in ("sum", "mean"):
        score = m.dcimig(z, v, n_bins=bins, normalization=normalization)
        assert score == pytest.approx(expected, abs=0.01)
    # Torch tensors are accepted and give the same number.
    assert m.dcimig(torch.from_numpy(z), torch.from_numpy(v)) == m.dcimig(z, v)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dcimig_of_independent_codes_is_near_zero(seed: int) -> None:
    v = _uniform_factors(2000, 4, seed)
    z = np.random.default_rng(seed + 100).normal(size=(2000, 6))
    assert m.dcimig(z, v) < 0.1  # measured 0.001-0.01


def test_dcimig_drops_when_one_dimension_encodes_two_factors() -> None:
    v = _uniform_factors(2000, 4, 0)
    one_to_one = m.dcimig(_one_to_one_code(v), v)
    noise = np.random.default_rng(5).normal(size=2000)
    mixed = np.stack([v[:, 0] + v[:, 1], v[:, 2], v[:, 3], noise], 1)
    score = m.dcimig(mixed, v)
    # Factor 1 is nobody's best (S = 0) and dimension 0's gap is small: at most 3/4.
    assert score < 0.75 and score < one_to_one - 0.3  # measured 0.48 vs 0.96


# ------------------------------------------------------------------------------------------------
# DCI (random forests)
# ------------------------------------------------------------------------------------------------
def test_dci_one_to_one_code() -> None:
    v = _uniform_factors(600, 4, 0)
    r = m.dci(_one_to_one_code(v), v, n_estimators=20)
    assert r["disentanglement"] > 0.95 and r["completeness"] > 0.95  # measured 0.999
    assert r["explicitness"] > 0.95 and r["informativeness"] == r["explicitness"]
    # The importance matrix is the permutation: dimension j predicts factor perm[j].
    assert r["importance"].argmax(1).tolist() == [2, 0, 3, 1]
    np.testing.assert_allclose(r["importance"].sum(0), 1.0, atol=1e-12)


def test_dci_of_a_rotated_mixture_is_entangled_but_explicit() -> None:
    """Each code dimension an equal-weight (Hadamard) mix of all four factors."""
    v = _uniform_factors(600, 4, 0)
    hadamard = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2
    r = m.dci((v - 0.5) @ hadamard, v, n_estimators=20)
    assert r["disentanglement"] < 0.2 and r["completeness"] < 0.2  # measured 0.011, 0.013
    assert r["explicitness"] > 0.8  # measured 0.93: the information is all there


def test_dci_explicitness_of_noise_is_zero_and_group_split_holds_out_songs() -> None:
    v = _uniform_factors(600, 3, 0)
    noise = np.random.default_rng(1).normal(size=(600, 4))
    assert m.dci_explicitness(noise, v, n_estimators=20) < 0.05  # held-out R² <= 0 → 0
    songs = np.repeat(np.arange(30), 20)
    z = v + 0.01 * np.random.default_rng(2).normal(size=v.shape)
    assert m.dci_explicitness(z, v, groups=songs, n_estimators=20) > 0.95
    with pytest.raises(ValueError, match="same number of rows"):
        m.dci(noise[:10], v)


# ------------------------------------------------------------------------------------------------
# Retrieval across songs
# ------------------------------------------------------------------------------------------------
def _design(n_songs: int, n_styles: int) -> tuple[np.ndarray, np.ndarray]:
    """Every song rendered in every style: (style_ids, song_ids)."""
    return np.tile(np.arange(n_styles), n_songs), np.repeat(np.arange(n_songs), n_styles)


def test_retrieval_of_one_hot_styles_is_perfect_and_of_noise_is_chance() -> None:
    styles, songs = _design(20, 8)
    rng = np.random.default_rng(0)
    one_hot = np.eye(8)[styles] + 0.05 * rng.normal(size=(160, 8))
    assert m.retrieval_top1(one_hot, styles, songs) == 1.0
    accs = [
        m.retrieval_top1(np.random.default_rng(s).normal(size=(160, 16)), styles, songs)
        for s in range(5)
    ]
    # Chance 1/8; one estimate has sd sqrt(p(1-p)/160) = 0.026, the mean of five 0.012.
    assert abs(np.mean(accs) - 1 / 8) < 0.04  # measured 0.116


def test_retrieval_never_counts_the_same_song() -> None:
    # Query 0 (song 0, style 0). Its own song holds an identical item of style 0; of the
    # other songs, the nearest is of style 1 and the farther one of style 0.
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.2, 1.0]])
    styles = np.array([0, 0, 1, 0])
    songs = np.array([0, 0, 1, 2])
    hits = m.retrieval_correct(emb, styles, songs)
    assert hits[0] == 0.0 and hits[1] == 0.0  # the same-song twin would have made both 1
    assert m.retrieval_correct(emb, styles, np.arange(4))[0] == 1.0  # …as it does here
    # One song only: no candidate at all.
    assert np.isnan(m.retrieval_correct(emb, styles, np.zeros(4))).all()
    with pytest.raises(ValueError, match="no query has a candidate"):
        m.retrieval_top1(emb, styles, np.zeros(4))


def test_retrieval_group_restriction() -> None:
    # Query 0 (group 0, style 0): across groups its nearest is item 1 (group 1, style 0);
    # within group 0 it is item 2 (style 1).
    emb = np.array([[1.0, 0.0], [1.0, 0.01], [0.8, 0.6], [0.0, 1.0]])
    styles = np.array([0, 0, 1, 1])
    songs = np.array([0, 1, 2, 3])
    groups = np.array([0, 1, 0, 1])
    assert m.retrieval_correct(emb, styles, songs)[0] == 1.0
    assert m.retrieval_correct(emb, styles, songs, groups)[0] == 0.0
    # Torch tensors in, same answer.
    t = m.retrieval_correct(torch.tensor(emb), torch.tensor(styles), torch.tensor(songs))
    np.testing.assert_array_equal(t, m.retrieval_correct(emb, styles, songs))


def _noisy_styles(n_songs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    styles, songs = _design(n_songs, 8)
    rng = np.random.default_rng(seed)
    emb = np.eye(8)[styles] + 0.45 * rng.normal(size=(len(styles), 8))
    return emb, styles, songs


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_songs() -> None:
    emb, styles, songs = _noisy_styles(10, 0)
    acc, low, high = m.retrieval_bootstrap(emb, styles, songs, n_boot=1000, seed=0)
    assert acc == pytest.approx(m.retrieval_top1(emb, styles, songs), abs=1e-12)
    assert low <= acc <= high and 0.0 < high - low
    emb80, styles80, songs80 = _noisy_styles(80, 1)
    acc80, low80, high80 = m.retrieval_bootstrap(emb80, styles80, songs80, n_boot=1000, seed=0)
    assert low80 <= acc80 <= high80
    # The width shrinks like 1/sqrt(songs): sqrt(10/80) = 0.35 of the 10-song width.
    assert high80 - low80 < 0.6 * (high - low)
    # Reproducible with the seed.
    assert m.retrieval_bootstrap(emb, styles, songs, n_boot=1000, seed=0) == (acc, low, high)


# ------------------------------------------------------------------------------------------------
# Baseline features
# ------------------------------------------------------------------------------------------------
def _audio(batch: int = 6, seconds: float = 0.25, seed: int = 0) -> torch.Tensor:
    """Partly correlated stereo noise with a different spectral tilt per item."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 2, round(SR * seconds), generator=g, dtype=torch.float64)
    x[:, 1] = 0.6 * x[:, 0] + 0.4 * x[:, 1]
    x = x.cumsum(-1) * torch.linspace(0.002, 0.02, batch, dtype=torch.float64)[:, None, None]
    x = x - x.mean(-1, keepdim=True)
    return 0.1 * x / x.std(dim=(1, 2), keepdim=True) + 0.01 * torch.randn(x.shape, generator=g)


def test_feature_shapes_and_names() -> None:
    x = _audio().float()
    assert fe.content_embedding(x, SR).shape == (6, 24)
    e = fe.effect_features(x, SR)
    assert e.shape == (6, 52) and e.dtype == torch.float32
    assert len(fe.effect_feature_names(SR)) == 52
    assert fe.effect_feature_groups(16000) == (21, 21, 1, 1, 1, 1)  # Bark centres below 8 kHz
    assert fe.effect_features(x[..., ::2].contiguous(), 22050).shape == (6, 2 * 23 + 4)
    with pytest.raises(ValueError, match="stereo"):
        fe.effect_features(x[:, :1], SR)


def test_gain_changes_only_the_level_feature() -> None:
    x = _audio()
    raw = fe.effect_features_raw(x, SR)
    raw_gain = fe.effect_features_raw(F.gain(x, 7.5), SR)
    diff = raw_gain - raw
    rms = fe.effect_feature_names(SR).index("rms")
    np.testing.assert_allclose(diff[:, rms].numpy(), 7.5, atol=1e-9)
    others = torch.cat([diff[:, :rms], diff[:, rms + 1 :]], 1)
    assert others.abs().max() < 1e-9
    stats = fe.fit_stats(raw)  # standardised with fixed statistics: the rms column only
    d_std = fe.effect_features(F.gain(x, 7.5), SR, stats) - fe.effect_features(x, SR, stats)
    np.testing.assert_allclose(d_std[:, rms].numpy(), 7.5 / stats.std[rms].item(), rtol=1e-9)
    assert torch.cat([d_std[:, :rms], d_std[:, rms + 1 :]], 1).abs().max() < 1e-9
    # The content embedding ignores the gain.
    assert (fe.content_features(F.gain(x, 7.5), SR) - fe.content_features(x, SR)).abs().max() < 1e-9


def test_imager_keeps_the_content_embedding_and_moves_the_width() -> None:
    x = _audio()
    y = F.stereo_imager(x, 0.3)  # side down, mid rescaled uniformly (total energy kept)
    assert (fe.content_embedding(y, SR) - fe.content_embedding(x, SR)).abs().max() < 1e-9
    names = fe.effect_feature_names(SR)
    w = names.index("width")
    raw_x, raw_y = fe.effect_features_raw(x, SR), fe.effect_features_raw(y, SR)
    np.testing.assert_allclose(raw_y[:, w].numpy(), analysis.stereo_width(y).numpy(), rtol=1e-12)
    assert (raw_y[:, w] < raw_x[:, w] - 0.01).all()
    side = slice(names.index("side_spectrum.50Hz"), names.index("rms"))
    assert (raw_y[:, side] - raw_x[:, side]).mean() < -3.0  # side bands fall by several dB
    # An EQ does move the content embedding: +9 dB peak at 1 kHz raises its band.
    gains = [0.0, 0.0, 9.0, 0.0, 0.0]
    freqs = [100.0, 400.0, 1000.0, 6000.0, 12000.0]
    eq = F.parametric_eq(x, SR, gain_db=gains, freq_hz=freqs, q=[0.707, 1.0, 1.0, 1.0, 0.707])
    band = [f"{c:g}" for c in analysis.BARK_CENTRES_HZ].index("1000")
    rise = fe.content_features(eq, SR)[:, band] - fe.content_features(x, SR)[:, band]
    assert (rise > 5.0).all()


def test_standardisation_closed_forms() -> None:
    x = _audio(batch=8)
    e = fe.effect_features(x, SR).to(torch.float64)
    np.testing.assert_allclose(e.mean(0).numpy(), 0.0, atol=1e-9)
    # Each group: per column variance 1/|g|, so its mean squared norm is exactly 1.
    start = 0
    for size in fe.effect_feature_groups(SR):
        group = e[:, start : start + size]
        assert group.square().sum(1).mean().item() == pytest.approx(1.0, abs=1e-9)
        start += size
    c = fe.content_embedding(x, SR).to(torch.float64)
    np.testing.assert_allclose(c.std(0, correction=0).numpy(), 1.0, rtol=1e-9)


def test_silence_gives_finite_features() -> None:
    x = _audio(batch=3).float()
    x[1] = 0.0
    for emb in (fe.effect_features(x, SR), fe.content_embedding(x, SR)):
        assert torch.isfinite(emb).all()
    raw = fe.effect_features_raw(torch.zeros(2, 2, SR // 4), SR)
    assert torch.isfinite(raw).all() and raw.min() >= fe.DB_FLOOR
    assert (fe.effect_features(torch.zeros(2, 2, SR // 4), SR) == 0).all()


def test_effect_features_retrieve_level_and_width_styles_the_content_embedding_cannot() -> None:
    """Four styles (gain × imager width) over five songs: the effect features find the style
    across songs; the content embedding is blind to both effects (chance 1/4)."""
    songs_audio = _audio(batch=5, seconds=0.25, seed=3)
    styles = [(-6.0, 0.2), (-6.0, 1.8), (6.0, 0.2), (6.0, 1.8)]
    items, style_ids, song_ids = [], [], []
    for s, (gain_db, width) in enumerate(styles):
        items.append(F.gain(F.stereo_imager(songs_audio, width), gain_db))
        style_ids += [s] * 5
        song_ids += list(range(5))
    audio = torch.cat(items)
    effect = m.retrieval_top1(fe.effect_features(audio, SR), style_ids, song_ids)
    content = m.retrieval_top1(fe.content_embedding(audio, SR), style_ids, song_ids)
    assert effect == 1.0
    assert content <= 0.5
