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


# ----------------------------------------------------- gates, block edges and bad input, exactly


def test_exactly_one_block_is_measured_like_pyloudnorm() -> None:
    """400 ms at 48 kHz (19200 samples): one gating block, the mean of one power."""
    sr = 48000
    x = noise(sr, 0.4, seed=11)
    assert x.shape[-1] == 19200
    ours = float(loudness(torch.tensor(x)[None], sr))
    weighted = ss.sosfilt(BS1770_48K, x, axis=-1)
    closed = -0.691 + 10 * math.log10(float(np.mean(weighted**2, axis=-1).sum()))
    assert abs(ours - closed) < 1e-6
    reference = pyln.Meter(sr, filter_class="DeMan").integrated_loudness(x.T)
    assert abs(ours - reference) < 1e-3
    with pytest.raises(ValueError, match=r"9600 samples at 48000 Hz is 200\.0 ms"):
        loudness(torch.tensor(x[:, :9600])[None], sr)


@pytest.mark.parametrize("offset_lu", [0.5, -0.5])
def test_absolute_gate_at_minus_70_lufs(offset_lu: float) -> None:
    """Steady noise half a LU above the absolute gate is measured; half below is silence."""
    sr = 48000
    x = noise(sr, 3.0, seed=11)
    level = pyln.Meter(sr, filter_class="DeMan").integrated_loudness(x.T)
    x = x * 10 ** ((-70.0 + offset_lu - level) / 20)
    ours = float(loudness(torch.tensor(x)[None], sr))
    reference = pyln.Meter(sr, filter_class="DeMan").integrated_loudness(x.T)
    if offset_lu > 0:
        assert abs(ours - (-70.0 + offset_lu)) < 0.05 and abs(ours - reference) < 1e-3
    else:
        assert ours == -math.inf and reference == -math.inf
        # normalize_loudness leaves an item below the gate untouched (not silent: no gain)
        y = normalize_loudness(torch.tensor(x)[None], sr, -23.0)
        assert torch.equal(y, torch.tensor(x)[None])


@pytest.mark.parametrize("margin_lu", [0.7, -0.5])
def test_relative_gate_on_both_sides(margin_lu: float) -> None:
    """A quiet part just above (+0.7 LU) or just below (−0.5 LU) the −10 LU relative gate.

    The quiet part's level q solves q − gate(q) = margin, with gate(q) = 10·log10(0.4 + 0.6·
    10^(q/10)) − 10 relative to the loud part (40 % loud, 60 % quiet). Above the gate it counts,
    below it does not; a gate 1.4 LU higher (+0.691 in place of −0.691) or 1 LU lower would
    each flip one of the two cases.
    """
    import scipy.optimize as so

    def gap(q: float) -> float:
        return q - (10 * math.log10(0.4 + 0.6 * 10 ** (q / 10)) - 10) - margin_lu

    q = so.brentq(gap, -30.0, -1.0)
    sr = 48000
    x = noise(sr, 10.0, seed=3)
    x[:, 4 * sr :] *= 10 ** (q / 20)
    moved = -8.618 if margin_lu > 0 else -11.0  # the gate a wrong constant would give
    assert abs(_gated_lufs(x, sr, -10.0) - _gated_lufs(x, sr, moved)) > 0.5
    ours = float(loudness(torch.tensor(x)[None], sr))
    assert abs(ours - _gated_lufs(x, sr, -10.0)) < 1e-3
    assert abs(ours - pyln.Meter(sr, filter_class="DeMan").integrated_loudness(x.T)) < 1e-3


def test_lowest_sample_rate_is_accepted_and_a_lower_one_is_named() -> None:
    x = torch.tensor(noise(8000, 1.0, seed=11))[None]
    ours = float(loudness(x, 8000))
    assert (
        abs(ours - pyln.Meter(8000, filter_class="DeMan").integrated_loudness(x[0].numpy().T))
        < 0.01
    )
    with pytest.raises(ValueError, match=r"sample_rate=7999 Hz is too low"):
        loudness(x, 7999)


def test_normalize_target_range_is_minus_100_to_plus_10_lufs() -> None:
    sr = 48000
    x = torch.tensor(noise(sr, 1.0, seed=11))[None] * 0.1
    for target in (-100.0, 10.0):
        y = normalize_loudness(x, sr, target)
        # at -100 LUFS the output is gated as silence; check the applied gain instead
        gain_db = 20 * math.log10(float(y.abs().max() / x.abs().max()))
        assert abs(gain_db - (target - float(loudness(x, sr)))) < 1e-6
    with pytest.raises(ValueError, match=r"target_lufs=-100.5 is below its minimum -100"):
        normalize_loudness(x, sr, -100.5)
    with pytest.raises(ValueError, match=r"target_lufs=10.5 is above its maximum 10"):
        normalize_loudness(x, sr, 10.5)


def test_more_than_five_channels_are_refused_by_count() -> None:
    with pytest.raises(ValueError, match=r"up to 5 channels, got 6"):
        loudness(torch.randn(1, 6, 48000), 48000)


def test_rms_of_a_batch_with_an_overflowing_item_and_silence() -> None:
    """x² overflows float32 for one item: the exact rescaled path, silence stays finite."""
    from fxdsp.functional.loudness import rms

    x = torch.zeros(3, 2, 64)
    x[1] = 1e30 * torch.sign(torch.randn(2, 64, generator=torch.Generator().manual_seed(0)))
    x[2] = 0.5
    assert not bool(torch.isfinite(x.square().mean(dim=(-2, -1))).all())
    r = rms(x)
    assert bool(torch.isfinite(r).all())
    assert r[0].item() == pytest.approx(math.sqrt(1e-30), rel=1e-6)
    assert r[1].item() == pytest.approx(1e30, rel=1e-6)
    assert r[2].item() == pytest.approx(0.5, rel=1e-6)
    # Off the CPU (meta stands in for an accelerator) the rescaled path runs without a sync.
    m = rms(torch.empty(4, 2, 16, device="meta"))
    assert m.device.type == "meta" and m.shape == (4,)


def test_rms_normalize_names_its_arguments_and_takes_one_sample() -> None:
    y, ref = torch.full((2, 1, 1), 0.5), torch.full((2, 1, 1), 0.25)
    torch.testing.assert_close(rms_normalize_to(y, ref), torch.full((2, 1, 1), 0.25))
    with pytest.raises(ValueError, match=r"^y must have shape"):
        rms_normalize_to(torch.zeros(2, 8), ref)
    with pytest.raises(ValueError, match=r"^reference must have shape"):
        rms_normalize_to(y, torch.zeros(2, 8))
    with pytest.raises(ValueError, match=r"same batch size, got 2 and 3"):
        rms_normalize_to(y, torch.zeros(3, 2, 8))


@pytest.mark.parametrize("level", [0.1, 3e5])
def test_float32_loudness_is_the_float64_measure_rounded_once(level: float) -> None:
    """float32 audio is K-weighted and gated in float64 (and a loud item's power-of-two scale
    added back in float64): the result is the float64 measure of the same samples, rounded once
    to float32. Block powers summed in float32 would move it by ~1e-5 LU (several ulps)."""
    x = (level * torch.randn(3, 2, 48000 * 3, generator=torch.Generator().manual_seed(2))).float()
    want = loudness(x.double(), 48000).float()
    assert torch.equal(loudness(x, 48000), want)
