"""BS.1770-4 loudness against pyloudnorm, gating, silence, normalisation and RMS matching."""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm as pyln
import pytest
import scipy.signal as ss
import torch
from signals import music, noise

from fxdsp.functional.loudness import (
    k_weighting_sos,
    loudness,
    normalize_loudness,
    rms_normalize_to,
)

# BS.1770-4 Table 1 and 2: the published 48 kHz K-weighting coefficients.
BS1770_48K = np.array(
    [
        [
            1.53512485958697,
            -2.69169618940638,
            1.19839281085285,
            1.0,
            -1.69065929318241,
            0.73248077421585,
        ],
        [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621],
    ]
)


def test_k_weighting_reproduces_the_standard_at_48k() -> None:
    np.testing.assert_allclose(k_weighting_sos(48000).numpy(), BS1770_48K, atol=1e-8)


@pytest.mark.parametrize("sr", [44100, 48000])
@pytest.mark.parametrize("kind", ["music", "noise", "quiet_music"])
def test_loudness_matches_pyloudnorm(sr: int, kind: str) -> None:
    x = {
        "music": music(sr, 8.0),
        "noise": noise(sr, 5.0),
        "quiet_music": 0.01 * music(sr, 8.0, seed=3),
    }[kind]
    ours = float(loudness(torch.tensor(x)[None], sr))
    # pyloudnorm's default filters approximate K-weighting; its "DeMan" filters are exact.
    assert abs(ours - pyln.Meter(sr).integrated_loudness(x.T)) < 0.1
    assert abs(ours - pyln.Meter(sr, filter_class="DeMan").integrated_loudness(x.T)) < 1e-3
    ours32 = float(loudness(torch.tensor(x, dtype=torch.float32)[None], sr))
    assert abs(ours32 - ours) < 1e-3


def test_gating_per_item_in_a_batch() -> None:
    sr = 44100
    base = music(sr, 6.0)
    gated = base.copy()
    gated[:, : 3 * sr] *= 1e-3  # 60 dB quieter first half: removed by the relative gate
    mono = base[:1]
    items = np.stack([base, gated, 0.5 * base])
    got = loudness(torch.tensor(items), sr)
    meter = pyln.Meter(sr)
    for i in range(3):
        assert abs(float(got[i]) - meter.integrated_loudness(items[i].T)) < 0.1
    # Halving the amplitude lowers loudness by 6.02 LU exactly.
    assert abs(float(got[0] - got[2]) - 20 * math.log10(2)) < 1e-6
    # Mono is supported (one channel, weight 1).
    assert (
        abs(float(loudness(torch.tensor(mono)[None], sr)) - meter.integrated_loudness(mono[0]))
        < 0.1
    )


def test_silence_is_minus_inf_never_nan() -> None:
    x = torch.zeros(3, 2, 44100, requires_grad=True)
    y = torch.tensor(music(44100, 1.0), dtype=torch.float32)
    batch = torch.stack([x[0], y, x[2] + 1e-6 * y])  # silent, music, below the absolute gate
    lufs = loudness(batch, 44100)
    values = lufs.detach()
    assert math.isinf(float(values[0])) and float(values[0]) < 0
    assert math.isinf(float(values[2]))
    assert math.isfinite(float(values[1]))
    lufs[1].backward()
    assert torch.isfinite(x.grad).all()


def test_normalize_loudness_hits_target_and_leaves_silence() -> None:
    sr = 48000
    x = torch.tensor(np.stack([music(sr, 4.0), 0.05 * noise(sr, 4.0), np.zeros((2, 4 * sr))]))
    y = normalize_loudness(x, sr, torch.tensor([-14.0, -23.0, -14.0], dtype=torch.float64))
    meter = pyln.Meter(sr)
    assert abs(meter.integrated_loudness(y[0].numpy().T) + 14.0) < 0.1
    assert abs(meter.integrated_loudness(y[1].numpy().T) + 23.0) < 0.1
    assert torch.equal(y[2], x[2])
    assert torch.isfinite(y).all()


def test_loudness_gradient_matches_closed_form() -> None:
    """dL/dg for y = g·x is 20/(g ln 10) (gating unchanged by a small gain change)."""
    x = torch.tensor(music(44100, 2.0))[None]
    g = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    loudness(x * g, 44100).sum().backward()
    assert abs(float(g.grad) - 20 / (1.3 * math.log(10))) < 1e-6


def test_rms_normalize_to() -> None:
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(3, 2, 1000, generator=gen, dtype=torch.float64)
    ref = torch.randn(3, 2, 1000, generator=gen, dtype=torch.float64) * torch.tensor(
        [0.1, 1.0, 3.0]
    ).reshape(3, 1, 1)
    y[2] = 0.0
    out = rms_normalize_to(y, ref)
    rms = lambda t: t.square().mean(dim=(1, 2)).sqrt()  # noqa: E731
    torch.testing.assert_close(rms(out)[:2], rms(ref)[:2])
    assert torch.equal(out[2], y[2])
    with pytest.raises(ValueError, match="batch size"):
        rms_normalize_to(y, ref[:2])


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="400 ms"):
        loudness(torch.randn(1, 2, 1000), 44100)
    with pytest.raises(ValueError, match="sample_rate"):
        loudness(torch.randn(1, 2, 44100), -1)
    with pytest.raises(ValueError, match="shape"):
        loudness(torch.randn(2, 44100), 44100)
    with pytest.raises(ValueError, match="samples"):
        loudness(torch.randn(1, 2, 1), 44100)
    with pytest.raises(ValueError, match="target_lufs"):
        normalize_loudness(torch.randn(2, 2, 44100), 44100, torch.zeros(3))
    bad = torch.randn(1, 2, 44100)
    bad[0, 1, 7] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        loudness(bad, 44100)


def test_k_weighting_response_other_rates() -> None:
    """At any rate the K-weighting has the standard's response: +4 dB at 10 kHz, RLB −∞ at DC."""
    for sr in (22050, 32000, 44100, 96000):
        sos = k_weighting_sos(sr).numpy()
        _, h = ss.sosfreqz(sos, worN=[20.0, 1000.0, 10000.0], fs=sr)
        db = 20 * np.log10(np.abs(h))
        assert db[0] < -10  # the RLB high-pass at 38 Hz
        assert abs(db[1] - 0.7) < 0.3  # the shelf just starting near 1 kHz
        assert abs(db[2] - 4.0) < 0.2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loudness_cuda_matches_cpu() -> None:
    x = torch.tensor(music(44100, 3.0), dtype=torch.float32)[None]
    assert abs(float(loudness(x.cuda(), 44100).cpu()) - float(loudness(x, 44100))) < 1e-3


def test_gradcheck_normalize_loudness() -> None:
    """float64 gradcheck w.r.t. the target and a gain on a short (0.5 s at 8 kHz) signal."""
    sr = 8000
    x = torch.tensor(music(sr, 0.5))[None]
    target = torch.tensor([-20.0], dtype=torch.float64, requires_grad=True)
    g = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)

    def fn(target: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return normalize_loudness(x * g.reshape(-1, 1, 1), sr, target)[..., ::50]

    assert torch.autograd.gradcheck(fn, (target, g))
    xs = (torch.tensor(music(sr, 0.45))[None, :, ::1])[..., :3600].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda t: loudness(t, sr), (xs,), eps=1e-6, atol=1e-5, fast_mode=True
    )


def _gated_lufs(x: np.ndarray, sr: int, rel_gate_lu: float) -> float:
    """Plain float64 BS.1770 gating (the standard's K-weighting from scipy, blocks by slicing)."""
    weighted = ss.sosfilt(k_weighting_sos(sr).numpy(), x, axis=-1)
    block, hop = round(0.4 * sr), round(0.1 * sr)
    starts = range(0, x.shape[-1] - block + 1, hop)
    z = np.array([[np.mean(c[s : s + block] ** 2) for s in starts] for c in weighted])
    power = z.sum(axis=0)  # two equal-weight channels
    block_lufs = -0.691 + 10 * np.log10(power)
    kept = power[block_lufs > -70.0]
    gate = -0.691 + 10 * np.log10(kept.mean()) + rel_gate_lu
    return -0.691 + 10 * np.log10(power[(block_lufs > -70.0) & (block_lufs > gate)].mean())


def test_relative_gate_is_10_lu_below_the_absolutely_gated_loudness() -> None:
    """A quiet part that lies between a −10 LU and a −8 LU gate: kept, and it counts.

    40 % of the signal at the loud level, 60 % 12 dB below: the absolutely gated loudness is
    3.6 LU below the loud part, so the −10 LU gate sits 13.6 dB below it (the quiet part, −12,
    passes) where a −8 LU gate would sit at −11.6 (and drop it).
    """
    sr = 48000
    rng = np.random.default_rng(5)
    x = 0.2 * rng.standard_normal((2, 10 * sr))
    x[:, 4 * sr :] *= 10 ** (-12 / 20)
    with_quiet = _gated_lufs(x, sr, -10.0)
    without_quiet = _gated_lufs(x, sr, -8.0)
    assert with_quiet < without_quiet - 2.0  # the signal tells the two gates apart
    ours = float(loudness(torch.tensor(x)[None], sr))
    reference = pyln.Meter(sr, filter_class="DeMan").integrated_loudness(x.T)
    assert abs(ours - reference) < 1e-3
    assert abs(ours - with_quiet) < 1e-3


@pytest.mark.parametrize("channels", [3, 4, 5])
def test_channel_weights_beyond_stereo_match_pyloudnorm(channels: int) -> None:
    """Noise at a different level on each channel: G = 1, 1, 1, 1.41, 1.41 (BS.1770 Table 3)."""
    sr = 48000
    levels_db = np.array([0.0, -6.0, -12.0, 3.0, -3.0])[:channels]
    rng = np.random.default_rng(channels)
    x = 0.05 * rng.standard_normal((channels, 3 * sr)) * 10 ** (levels_db[:, None] / 20)
    ours = float(loudness(torch.tensor(x)[None], sr))
    reference = pyln.Meter(sr, filter_class="DeMan").integrated_loudness(x.T)
    assert abs(ours - reference) < 1e-3
    # Closed form on the same blocks: the loudness of the weighted sum of channel powers.
    weighted = ss.sosfilt(k_weighting_sos(sr).numpy(), x, axis=-1)
    g = np.array([1.0, 1.0, 1.0, 1.41, 1.41])[:channels]
    block, hop = round(0.4 * sr), round(0.1 * sr)
    starts = range(0, x.shape[-1] - block + 1, hop)
    power = np.array([g @ np.mean(weighted[:, s : s + block] ** 2, axis=1) for s in starts])
    assert abs(ours - (-0.691 + 10 * np.log10(power.mean()))) < 1e-3
