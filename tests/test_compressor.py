"""Tests of the stereo-linked feed-forward compressor and its smoothing kernel.

References: a plain float64 per-sample Python loop of Giannoulis et al. (JAES 2012) written
here, closed forms of the static curve and of the one-pole attack/release responses, autograd's
gradcheck, and (CUDA code path) Numba's CUDA simulator run in a subprocess.
"""

from __future__ import annotations

import math
import os
import textwrap

import numpy as np
import pytest
import torch
from subprocess_checks import assert_same_in_forked_child, run_python

from fxdsp.functional.dynamics import compressor
from fxdsp.kernels.compressor import smooth_gain

devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# --------------------------------------------------------------------------------------------
# Independent reference: plain float64 per-sample loop, one batch item.
# --------------------------------------------------------------------------------------------
def reference_compressor(
    x: np.ndarray,
    fs: float,
    threshold: float,
    ratio: float,
    attack_ms: float,
    release_ms: float,
    knee: float,
    makeup: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(y, g)`` for ``x`` of shape ``(channels, samples)`` (float64 loop)."""
    alpha_a = math.exp(-1.0 / (attack_ms / 1000.0 * fs))
    alpha_r = math.exp(-1.0 / (release_ms / 1000.0 * fs))
    channels, samples = x.shape
    y = np.empty((channels, samples))
    g_trace = np.empty(samples)
    g = 0.0
    for n in range(samples):
        d = max(abs(float(x[ch, n])) for ch in range(channels))
        level = 20.0 * math.log10(max(d, 1e-8))
        over = level - threshold
        if 2.0 * over < -knee:
            out_level = level
        elif abs(2.0 * over) <= knee and knee > 0.0:
            out_level = level + (1.0 / ratio - 1.0) * (over + knee / 2.0) ** 2 / (2.0 * knee)
        elif abs(2.0 * over) <= knee:  # hard knee, exactly at the threshold
            out_level = level
        else:
            out_level = threshold + over / ratio
        c = out_level - level
        if c < g:
            g = alpha_a * g + (1.0 - alpha_a) * c
        else:
            g = alpha_r * g + (1.0 - alpha_r) * c
        g_trace[n] = g
        for ch in range(channels):
            y[ch, n] = float(x[ch, n]) * 10.0 ** ((g + makeup) / 20.0)
    return y, g_trace


def music_like(batch: int, samples: int, fs: float, seed: int, peak: float = 0.9) -> np.ndarray:
    """Stereo noise with a decaying-burst amplitude envelope, partly correlated channels."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / fs
    out = np.empty((batch, 2, samples))
    for b in range(batch):
        env = np.full(samples, 0.01)
        for onset in rng.uniform(0.0, t[-1], size=6):
            amp = rng.uniform(0.05, 1.0)
            tau = rng.uniform(0.005, 0.05)
            env += np.where(t >= onset, amp * np.exp(-(t - onset) / tau), 0.0)
        env *= 1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(2, 8) * t)
        left = rng.standard_normal(samples)
        right = 0.6 * left + 0.8 * rng.standard_normal(samples)
        out[b, 0] = env * left
        out[b, 1] = rng.uniform(0.3, 1.2) * env * right
        out[b] *= peak / np.abs(out[b]).max()
    return out


PARAM_SETS = [
    # threshold_db, ratio, attack_ms, release_ms, knee_db, makeup_db
    (-20.0, 4.0, 5.0, 50.0, 0.0, 0.0),
    (-12.0, 8.0, 1.0, 200.0, 6.0, 3.0),
    (-30.0, 2.0, 20.0, 100.0, 12.0, -2.0),
    (-6.0, 40.0, 0.5, 20.0, 3.0, 6.0),
    (-45.0, 1.5, 2.0, 500.0, 24.0, 1.0),
]


def _as_batch_params(sets: list[tuple[float, ...]], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    names = ["threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "makeup_db"]
    cols = list(zip(*sets, strict=True))
    return {n: torch.tensor(col, dtype=dtype) for n, col in zip(names, cols, strict=True)}


# --------------------------------------------------------------------------------------------
# Reference loop
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fs", [8000.0, 16000.0])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-4), (torch.float32, 1e-3)])
def test_matches_reference_loop(fs: float, dtype: torch.dtype, tol: float) -> None:
    samples = int(0.2 * fs)
    x_np = music_like(len(PARAM_SETS), samples, fs, seed=int(fs))
    x = torch.from_numpy(x_np).to(dtype)
    y = compressor(x, fs, **_as_batch_params(PARAM_SETS, dtype))
    assert y.dtype == dtype
    for b, params in enumerate(PARAM_SETS):
        # The loop reads the same (possibly float32-rounded) samples the compressor saw.
        y_ref, g_ref = reference_compressor(x[b].double().numpy(), fs, *params)
        peak = np.abs(y_ref).max()
        err = np.abs(y[b].double().numpy() - y_ref).max()
        assert err <= tol * peak, f"set {params}: max error {err:.3g} vs peak {peak:.3g}"
        assert g_ref.min() < -0.5, "test signal must actually be compressed"


def test_matches_reference_loop_scalar_params_float64_tight() -> None:
    fs = 12000.0
    x = torch.from_numpy(music_like(2, 2400, fs, seed=5))
    y = compressor(x, fs, -18.0, 6.0, 3.0, 80.0, knee_db=8.0, makeup_db=2.5)
    for b in range(2):
        y_ref, _ = reference_compressor(x[b].numpy(), fs, -18.0, 6.0, 3.0, 80.0, 8.0, 2.5)
        np.testing.assert_allclose(y[b].numpy(), y_ref, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------------
def _gain_db(y: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    """Applied gain in dB from output/input of channel 0 (x must not vanish)."""
    return 20.0 * np.log10((y[0, 0] / x[0, 0]).double().numpy())


def _alternating(level_db: float, samples: int) -> torch.Tensor:
    """Constant-level signal: +-a with a = 10^(level/20), both channels (L, -L)."""
    a = 10.0 ** (level_db / 20.0)
    sign = torch.ones(samples, dtype=torch.float64)
    sign[1::2] = -1.0
    return torch.stack([a * sign, -0.5 * a * sign])[None]


@pytest.mark.parametrize(
    ("threshold", "ratio", "knee", "level", "expected_c"),
    [
        # hard knee, above threshold: c = (1/R - 1)(L - T)
        (-20.0, 4.0, 0.0, -8.0, (0.25 - 1.0) * 12.0),
        # soft knee, level inside the knee: c = (1/R - 1)(L - T + W/2)^2 / (2W)
        (-20.0, 4.0, 10.0, -18.0, (0.25 - 1.0) * (2.0 + 5.0) ** 2 / 20.0),
        (-20.0, 10.0, 10.0, -23.0, (0.1 - 1.0) * (-3.0 + 5.0) ** 2 / 20.0),
        # soft knee, level above the knee: same as the hard knee
        (-30.0, 3.0, 6.0, -10.0, (1.0 / 3.0 - 1.0) * 20.0),
    ],
)
def test_constant_level_attack_reaches_static_curve(
    threshold: float, ratio: float, knee: float, level: float, expected_c: float
) -> None:
    fs, attack_ms, makeup = 8000.0, 5.0, 1.5
    x = _alternating(level, 800)
    y = compressor(x, fs, threshold, ratio, attack_ms, 100.0, knee_db=knee, makeup_db=makeup)
    g = _gain_db(y, x) - makeup
    alpha = math.exp(-1.0 / (attack_ms / 1000.0 * fs))
    n = np.arange(800)
    # step response of the attack branch: g[n] = c (1 - alpha^(n+1))
    np.testing.assert_allclose(g, expected_c * (1.0 - alpha ** (n + 1)), rtol=1e-9, atol=1e-9)
    assert g[-1] == pytest.approx(expected_c, abs=1e-6)  # settled on the static curve
    # one time constant (tau fs = 40 samples) reaches 1 - 1/e of the target
    assert g[39] / expected_c == pytest.approx(1.0 - math.exp(-1.0), rel=1e-9)
    # both channels get the same gain
    np.testing.assert_allclose((y[0, 1] / x[0, 1]).numpy(), (y[0, 0] / x[0, 0]).numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_release_follows_one_pole(dtype: torch.dtype) -> None:
    """A loud block then a level below threshold: g decays as g0 alpha_R^k (long release)."""
    fs, attack_ms, release_ms = 44100.0, 1.0, 2000.0
    loud, quiet = 441, 90000
    x = torch.cat([_alternating(-6.0, loud), _alternating(-60.0, quiet)], dim=-1).to(dtype)
    y = compressor(x, fs, -30.0, 4.0, attack_ms, release_ms)
    g = _gain_db(y, x)
    c = (0.25 - 1.0) * 24.0
    alpha_a = math.exp(-1.0 / (attack_ms / 1000.0 * fs))
    alpha_r = math.exp(-1.0 / (release_ms / 1000.0 * fs))
    g0 = c * (1.0 - alpha_a**loud)
    k = np.arange(1, quiet + 1)
    expected = g0 * alpha_r**k
    # float32 output has ~1e-7 relative rounding: 1e-5 dB; a float32 pole or float32 recursion
    # would be off by ~1e-3 dB after one time constant.
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    np.testing.assert_allclose(g[:loud], c * (1.0 - alpha_a ** np.arange(1, loud + 1)), atol=tol)
    np.testing.assert_allclose(g[loud:], expected, atol=tol)
    # after one release time constant, 1/e of the gain reduction is left
    tau = int(release_ms / 1000.0 * fs)
    assert g[loud + tau - 1] / g0 == pytest.approx(math.exp(-1.0), abs=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_below_threshold_is_identity_times_makeup(dtype: torch.dtype) -> None:
    fs = 8000.0
    x = torch.from_numpy(music_like(2, 1600, fs, seed=3, peak=10 ** (-30 / 20))).to(dtype)
    for knee in (0.0, 4.0):  # lower knee edge at -22 dB, above the -30 dB peak
        for makeup in (0.0, 4.0):
            y = compressor(x, fs, -20.0, 10.0, 1.0, 50.0, knee_db=knee, makeup_db=makeup)
            expected = x * 10.0 ** (makeup / 20.0)
            torch.testing.assert_close(
                y, expected, rtol=1e-12 if dtype == torch.float64 else 1e-6, atol=0.0
            )


def test_ratio_one_is_identity() -> None:
    x = torch.from_numpy(music_like(2, 1600, 8000.0, seed=4))
    y = compressor(x, 8000.0, -40.0, 1.0, 1.0, 50.0, knee_db=6.0)
    torch.testing.assert_close(y, x, rtol=1e-14, atol=0.0)


# --------------------------------------------------------------------------------------------
# Stereo linking
# --------------------------------------------------------------------------------------------
def test_stereo_linking_same_gain_driven_by_louder_channel() -> None:
    fs = 8000.0
    x_np = music_like(1, 1600, fs, seed=11)
    # right is quieter than left at every sample
    x_np[:, 1] = 0.5 * x_np[:, 0] * np.random.default_rng(12).uniform(-1.0, 1.0, 1600)
    x = torch.from_numpy(x_np)
    kw = {"threshold_db": -25.0, "ratio": 6.0, "attack_ms": 2.0, "release_ms": 60.0}
    y = compressor(x, fs, knee_db=4.0, **kw)
    gain_l = y[0, 0] / x[0, 0]
    gain_r = y[0, 1] / x[0, 1]
    nz = (x[0, 0].abs() > 1e-6) & (x[0, 1].abs() > 1e-6)
    torch.testing.assert_close(gain_l[nz], gain_r[nz], rtol=1e-12, atol=0.0)
    assert float(gain_l.min()) < 10 ** (-6 / 20), "the test signal must be compressed"

    # The gain is the one of a mono signal equal to the louder channel |x| sample by sample.
    louder = x.abs().amax(dim=1, keepdim=True)
    y_mono = compressor(louder, fs, knee_db=4.0, **kw)
    nz_m = louder[0, 0] > 1e-6
    torch.testing.assert_close(
        (y_mono[0, 0] / louder[0, 0])[nz_m], gain_l[nz_m], rtol=1e-12, atol=0.0
    )
    # Changing the quieter channel (keeping it quieter) leaves the gain unchanged; swapping the
    # channels swaps nothing in the gain.
    x2 = x.clone()
    x2[0, 1] *= 0.5
    y2 = compressor(x2, fs, knee_db=4.0, **kw)
    torch.testing.assert_close(y2[0, 0], y[0, 0], rtol=0.0, atol=0.0)
    y_swap = compressor(x.flip(1), fs, knee_db=4.0, **kw)
    torch.testing.assert_close(y_swap.flip(1), y, rtol=0.0, atol=0.0)
    # An unlinked (right alone) compression would differ: the link matters.
    y_right_alone = compressor(x[:, 1:], fs, knee_db=4.0, **kw)
    assert float((y_right_alone[0, 0] - y[0, 1]).abs().max()) > 1e-3 * float(x[0, 1].abs().max())


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------
def test_gradcheck_all_inputs() -> None:
    fs = 8000.0
    x = torch.from_numpy(music_like(2, 160, fs, seed=21)).requires_grad_(True)

    def p(*v: float) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.float64, requires_grad=True)

    params = (p(-20.0, -14.0), p(4.0, 2.5), p(2.0, 0.7), p(30.0, 90.0), p(3.0, 7.0), p(1.0, -2.0))

    def fn(x: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return compressor(x, fs, *ps)

    with torch.no_grad():  # the test signal must use the attack, release and knee branches
        _, g = reference_compressor(x[0].numpy(), fs, -20.0, 4.0, 2.0, 30.0, 3.0, 1.0)
        assert g.min() < -3.0
    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_smoothing_kernel() -> None:
    gen = torch.Generator().manual_seed(0)
    c = -10.0 * torch.rand(3, 150, generator=gen, dtype=torch.float64)
    c[:, 3::7] = 0.0  # release steps back to 0 dB (c[0] < 0: no exact switch at g[-1] = 0)
    c.requires_grad_(True)
    alpha_a = torch.tensor([0.5, 0.8, 0.95], dtype=torch.float64, requires_grad=True)
    alpha_r = torch.tensor([0.9, 0.97, 0.999], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(smooth_gain, (c, alpha_a, alpha_r), atol=1e-7, rtol=1e-5)


def test_kernel_gradient_at_branch_switch_uses_forward_branch() -> None:
    """c[0] == g[-1] == 0 exactly: the forward takes the release branch, so dg0/dc0 = 1 - aR."""
    c = torch.tensor([[0.0, -5.0, -5.0, 0.0]], dtype=torch.float64, requires_grad=True)
    alpha_a = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    alpha_r = torch.tensor([0.9], dtype=torch.float64, requires_grad=True)
    g = smooth_gain(c, alpha_a, alpha_r)
    (grad_c,) = torch.autograd.grad(g[0, 0], c)
    assert grad_c[0, 0].item() == pytest.approx(1.0 - 0.9, abs=1e-15)
    assert torch.count_nonzero(grad_c[0, 1:]) == 0
    # and g[1] (an attack step, c[1] < g[0]) has dg1/dc1 = 1 - aA, dg1/dc0 = aA (1 - aR)
    (grad_c1,) = torch.autograd.grad(smooth_gain(c, alpha_a, alpha_r)[0, 1], c)
    torch.testing.assert_close(
        grad_c1[0], torch.tensor([0.5 * 0.1, 0.5, 0.0, 0.0], dtype=torch.float64)
    )


def test_knee_derivative_at_hard_knee_is_one_sided_limit() -> None:
    """At knee 0 the output is locally independent of the knee (no sample at the threshold):
    the gradient w.r.t. knee_db must match the forward difference, not a 0/0 artefact."""
    fs = 8000.0
    x = torch.from_numpy(music_like(2, 800, fs, seed=31))

    def loss(knee: torch.Tensor) -> torch.Tensor:
        y = compressor(x, fs, -20.0, 5.0, 2.0, 60.0, knee_db=knee, makeup_db=0.0)
        return (y * x).sum()

    knee0 = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(knee0), knee0)
    h = 1e-5
    fd = torch.stack(
        [
            (loss(torch.tensor([h, 0.0])) - loss(knee0.detach())) / h,
            (loss(torch.tensor([0.0, h])) - loss(knee0.detach())) / h,
        ]
    )
    torch.testing.assert_close(grad, fd, rtol=0.0, atol=1e-8)
    # and a non-zero knee does change the output (the knee is not ignored)
    knee1 = torch.full((2,), 6.0, dtype=torch.float64, requires_grad=True)
    (grad1,) = torch.autograd.grad(loss(knee1), knee1)
    assert float(grad1.abs().min()) > 1e-3


EDGES = [
    ("threshold_db", -80.0),
    ("threshold_db", 0.0),
    ("ratio", 1.0),
    ("ratio", 40.0),
    ("attack_ms", 0.1),
    ("attack_ms", 100.0),
    ("release_ms", 10.0),
    ("release_ms", 2000.0),
    ("knee_db", 0.0),
    ("knee_db", 24.0),
]


@pytest.mark.parametrize("silent", [False, True], ids=["music", "silence"])
@pytest.mark.parametrize(("name", "value"), EDGES, ids=[f"{n}={v:g}" for n, v in EDGES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_gradients_at_range_edges(
    name: str, value: float, silent: bool, dtype: torch.dtype
) -> None:
    fs = 16000.0
    x_np = np.zeros((2, 2, 1600)) if silent else music_like(2, 1600, fs, seed=8)
    x = torch.from_numpy(x_np).to(dtype).requires_grad_(True)
    values = {
        "threshold_db": -24.0,
        "ratio": 4.0,
        "attack_ms": 5.0,
        "release_ms": 100.0,
        "knee_db": 6.0,
        "makeup_db": 2.0,
    }
    values[name] = value
    params = {k: torch.full((2,), v, dtype=dtype, requires_grad=True) for k, v in values.items()}
    y = compressor(x, fs, **params)
    assert torch.isfinite(y).all()
    if silent:
        assert torch.count_nonzero(y) == 0
    loss = y.square().sum() + y.sum()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for k, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{k}: {p.grad}"
    if silent:  # gain is exactly 10^(makeup/20) everywhere
        torch.testing.assert_close(
            x.grad, torch.full_like(x, 10 ** (2.0 / 20.0)), rtol=1e-6, atol=0.0
        )
    elif name == "ratio" and value == 1.0:
        # one-sided derivative at ratio 1 is not blocked (increasing ratio compresses)
        assert float(params["ratio"].grad.abs().min()) > 0.0


# --------------------------------------------------------------------------------------------
# Batching, shapes, devices, errors
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batch_item_equals_item_alone(dtype: torch.dtype) -> None:
    fs = 8000.0
    sets = PARAM_SETS[:4]
    x = torch.from_numpy(music_like(len(sets), 1600, fs, seed=9)).to(dtype)
    y = compressor(x, fs, **_as_batch_params(sets, dtype))
    for i, params in enumerate(sets):
        y_i = compressor(x[i : i + 1], fs, *params)
        torch.testing.assert_close(y[i : i + 1], y_i, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_shape_dtype_device_kept(device: str, dtype: torch.dtype, channels: int) -> None:
    x = torch.from_numpy(music_like(2, 400, 8000.0, seed=1))
    x = torch.cat([x, x[:, :1]], dim=1)[:, :channels].to(device=device, dtype=dtype)
    threshold = torch.tensor([-20.0, -10.0], device=device)
    y = compressor(x, 8000.0, threshold, 4.0, 2.0, 50.0, knee_db=3.0)
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert torch.isfinite(y).all()
    ref = compressor(x.float(), 8000.0, threshold, 4.0, 2.0, 50.0, knee_db=3.0)
    tol = 2e-2 if dtype == torch.bfloat16 else 1e-6
    torch.testing.assert_close(y.float(), ref, rtol=tol, atol=tol)


def test_bad_inputs_raise() -> None:
    x = torch.from_numpy(music_like(2, 400, 8000.0, seed=1))
    ok = {"threshold_db": -20.0, "ratio": 4.0, "attack_ms": 2.0, "release_ms": 50.0}
    with pytest.raises(ValueError, match="shape"):
        compressor(x[0], 8000.0, **ok)
    with pytest.raises(ValueError, match="samples"):
        compressor(x[..., :1], 8000.0, **ok)
    for fs in (0.0, -8000.0):
        with pytest.raises(ValueError, match="sample_rate"):
            compressor(x, fs, **ok)
    with pytest.raises(ValueError, match="threshold_db"):
        compressor(x, 8000.0, **{**ok, "threshold_db": torch.tensor([-20.0, -10.0, -5.0])})
    with pytest.raises(ValueError, match="knee_db"):
        compressor(x, 8000.0, **ok, knee_db=torch.zeros(3))
    x_nan = x.clone()
    x_nan[1, 0, 17] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        compressor(x_nan, 8000.0, **ok)
    for name, bad, message in [
        ("ratio", 0.5, r"^ratio=0.5 is below its minimum 1"),
        ("ratio", torch.tensor([4.0, 0.9]), r"^ratio=0.9 is below its minimum 1"),
        ("attack_ms", 0.0, r"^attack_ms must be > 0 ms, got 0"),
        ("attack_ms", float("nan"), r"^attack_ms must be finite"),
        ("release_ms", torch.ones(3), r"^release_ms must be a number or a \(batch,\) tensor"),
        ("attack_ms", -1.0, r"^attack_ms must be > 0 ms, got -1"),
        ("release_ms", 0.0, r"^release_ms must be > 0 ms, got 0"),
        ("release_ms", torch.tensor([50.0, -3.0]), r"^release_ms must be > 0 ms, got -3"),
        ("knee_db", -1.0, r"^knee_db=-1 is below its minimum 0"),
        ("threshold_db", float("nan"), r"^threshold_db must be finite"),
        ("makeup_db", float("inf"), r"^makeup_db must be finite"),
        ("makeup_db", -121.0, r"^makeup_db=-121 is below its minimum -120"),
        ("makeup_db", 121.0, r"^makeup_db=121 is above its maximum 120"),
    ]:
        kwargs = {**ok, "knee_db": 0.0, "makeup_db": 0.0, name: bad}
        with pytest.raises(ValueError, match=message):
            compressor(x, 8000.0, **kwargs)


def test_defaults_are_a_hard_knee_and_no_makeup() -> None:
    x = torch.from_numpy(music_like(2, 4000, 8000.0, seed=2))
    ok = {"threshold_db": -30.0, "ratio": 4.0, "attack_ms": 2.0, "release_ms": 50.0}
    explicit = compressor(x, 8000.0, **ok, knee_db=0.0, makeup_db=0.0)
    assert torch.equal(compressor(x, 8000.0, **ok), explicit)
    # and the knee matters on this signal, so the comparison can fail
    assert not torch.allclose(compressor(x, 8000.0, **ok, knee_db=6.0), explicit)


_FORK_RUN = """
from fxdsp.functional.dynamics import compressor

def run():
    gen = torch.Generator().manual_seed(0)
    x = (0.5 * torch.randn(3, 2, 2000, generator=gen, dtype=torch.float64)).requires_grad_()
    ratio = torch.tensor([2.0, 4.0, 8.0], dtype=torch.float64, requires_grad=True)
    y = compressor(x, 16000.0, -20.0, ratio, 2.0, 50.0, knee_db=4.0)
    y.square().sum().backward()
    return y.detach(), x.grad, ratio.grad
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_works_in_forked_child_after_parent_used_it() -> None:
    """DataLoader workers are forked: the kernels must not abort there (GNU OpenMP)."""
    assert_same_in_forked_child("import torch\n" + _FORK_RUN)


# --------------------------------------------------------------------------------------------
# CUDA code path: Numba's CUDA simulator (runs in CI) and a real GPU
# --------------------------------------------------------------------------------------------
_SIM_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from numba import config
    assert config.ENABLE_CUDASIM, "the CUDA simulator is not enabled"
    from fxdsp.kernels.compressor import backward_cpu, cuda_kernels, forward_cpu

    fwd, bwd = cuda_kernels()
    rng = np.random.default_rng(0)
    batch, samples = 2, 300
    for dtype in (np.float64, np.float32):
        c = np.minimum(0.0, rng.normal(-2.0, 4.0, (batch, samples))).astype(dtype)
        aa = np.array([0.6, 0.9])
        ar = np.array([0.95, 0.995])
        grad_g = rng.standard_normal((batch, samples)).astype(dtype)
        out = {}
        for name, f_kernel, b_kernel in (
            ("cpu", forward_cpu, backward_cpu),
            ("sim", fwd[1, 32], bwd[1, 32]),
        ):
            g = np.empty_like(c)
            mask = np.empty((batch, samples), dtype=np.uint8)
            f_kernel(c, aa, ar, g, mask)
            gc = np.empty_like(c)
            ga = np.empty(batch)
            gr = np.empty(batch)
            b_kernel(grad_g, g, c, mask, aa, ar, gc, ga, gr)
            out[name] = (g, mask, gc, ga, gr)
        cpu, sim = out["cpu"], out["sim"]
        assert 0 < cpu[1].mean() < 1, "both branches must be exercised"
        assert np.array_equal(cpu[1], sim[1]), "branch masks differ"
        rtol = 1e-12 if dtype == np.float64 else 1e-6
        for a, b in zip(cpu[:1] + cpu[2:], sim[:1] + sim[2:]):
            np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol)
        assert np.abs(cpu[3]).max() > 0 and np.abs(cpu[4]).max() > 0
    print("CUDASIM-OK")
    """
)


def test_cuda_kernels_in_numba_simulator() -> None:
    proc = run_python(_SIM_SCRIPT, env={"NUMBA_ENABLE_CUDASIM": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CUDASIM-OK" in proc.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.filterwarnings("error::RuntimeWarning")  # no silent fallback to the CPU kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(dtype: torch.dtype) -> None:
    from fxdsp.kernels.compressor import _numba_cuda_usable

    assert _numba_cuda_usable(), "numba.cuda cannot compile here (libNVVM missing?)"
    fs = 16000.0
    x_cpu = torch.from_numpy(music_like(len(PARAM_SETS), 3200, fs, seed=2)).to(dtype)
    results = {}
    for device in ("cpu", "cuda"):
        x = x_cpu.to(device).requires_grad_(True)
        params = {
            k: v.to(device).requires_grad_(True)
            for k, v in _as_batch_params(PARAM_SETS, dtype).items()
        }
        y = compressor(x, fs, **params)
        y.square().sum().backward()
        results[device] = [y.detach(), x.grad] + [p.grad for p in params.values()]
    tol = 1e-9 if dtype == torch.float64 else 2e-4
    for a, b in zip(results["cpu"], results["cuda"], strict=True):
        torch.testing.assert_close(b.cpu(), a, rtol=tol, atol=tol)


def test_serial_kernels_equal_the_parallel_ones() -> None:
    """The serial twins (run in forked children) give the parallel kernels' values exactly, for
    an odd batch (the parallel forward pairs rows) in float32 and float64."""
    from fxdsp.kernels import compressor as k

    rng = np.random.default_rng(6)
    for dtype in (np.float32, np.float64):
        c = (-30.0 * rng.random((5, 400)) * (rng.random((5, 400)) < 0.3)).astype(dtype)
        a_att, a_rel = rng.uniform(0.5, 0.99, 5), rng.uniform(0.9, 0.999, 5)
        outs = []
        for forward in (k.forward_cpu, k._forward_serial):
            g, m = np.empty_like(c), np.empty(c.shape, np.uint8)
            forward(c, a_att, a_rel, g, m)
            outs.append((g, m))
        assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
        g, m = outs[0]
        # the recursion written out for one row, in float64
        prev, want = 0.0, []
        for n in range(c.shape[1]):
            a = a_att[3] if c[3, n] < prev else a_rel[3]
            prev = a * prev + (1 - a) * float(c[3, n])
            want.append(prev)
        np.testing.assert_allclose(g[3], np.array(want, dtype=dtype), rtol=1e-6, atol=1e-6)
        grad_g = rng.normal(size=c.shape).astype(dtype)
        grads = []
        for backward in (k.backward_cpu, k._backward_serial):
            gc, ga, gr = np.empty_like(c), np.empty(5), np.empty(5)
            backward(grad_g, g, c, m, a_att, a_rel, gc, ga, gr)
            grads.append((gc, ga, gr))
        for x, y in zip(grads[0], grads[1], strict=True):
            assert np.array_equal(x, y)


def test_warm_up_compiles_both_dtypes() -> None:
    """In a fresh process (nothing compiled yet), warm_up() leaves float32 and float64 builds of
    both CPU kernels."""
    from fxdsp.kernels import compressor as k

    k.warm_up()  # here too: under NUMBA_DISABLE_JIT (mutation testing) only the calls are checked
    proc = run_python(
        """
        from fxdsp.kernels import compressor as k
        k.warm_up()
        for kernel, m in ((k.forward_cpu, 4), (k.backward_cpu, 3)):  # m: the mask's place
            print(sorted({(str(sig[0].dtype), str(sig[m].dtype)) for sig in kernel.signatures}))
        """
    )
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        assert proc.returncode != 0 and "signatures" in proc.stderr  # plain Python functions
        return
    assert proc.returncode == 0, proc.stderr
    builds = "[('float32', 'uint8'), ('float64', 'uint8')]"
    assert proc.stdout.split("\n")[:2] == [builds] * 2, proc.stdout


def test_kernel_inputs_and_second_order_are_refused_with_exact_messages() -> None:
    from fxdsp.kernels.compressor import smooth_gain_forward

    c = torch.zeros(2, 8, dtype=torch.float64)
    a = torch.full((2,), 0.5, dtype=torch.float64)
    cases = [
        ((torch.zeros(8), a, a), "c must be (batch, samples), got shape (8,)"),
        ((c.half(), a, a), "c must be float32 or float64, got torch.float16"),
        ((c, a[:1], a), "alpha_a must be (2,), got shape (1,)"),
        ((c, a, torch.full((3,), 0.5)), "alpha_r must be (2,), got shape (3,)"),
        ((c, a.to("meta"), a), "alpha_a is on meta but c is on cpu"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError) as info:
            smooth_gain_forward(*args)
        assert str(info.value) == message
    meta = torch.zeros(2, 8, device="meta")
    with pytest.raises(ValueError) as info:
        smooth_gain_forward(meta, a.to("meta"), a.to("meta"))
    assert str(info.value) == "the compressor kernel runs on CPU or CUDA tensors, not meta"
    g, mask = smooth_gain_forward(c - 6.0, a, a)
    assert g.dtype == torch.float64 and mask.dtype == torch.uint8 and mask.shape == (2, 8)
    x = (c - 6.0).requires_grad_(True)
    with pytest.raises(RuntimeError) as info:
        torch.autograd.grad(smooth_gain(x, a, a).square().sum(), x, create_graph=True)
    assert str(info.value) == (
        "the compressor's gain smoother (fxdsp.kernels.compressor.smooth_gain) has no "
        "second-order gradient: backward with create_graph=True, double backward and "
        "gradgradcheck are not supported (the first-order gradient is exact)"
    )
