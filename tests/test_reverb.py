"""Tests for fxdsp.functional.reverb (parametric reverb, FFT convolution) and fxdsp.prng."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import scipy.signal
import torch

from fxdsp.functional.reverb import (
    DAMPING_MIN_RATIO,
    TAIL_RT60_FACTOR,
    convolve,
    next_fast_len,
    reverb,
    reverb_impulse_response,
)
from fxdsp.prng import as_seed, mix64, normal_pair, random_bits, signed_uniform, uniform_pair

devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SR = 44100


def _audio(batch: int = 2, chans: int = 2, samples: int = 64, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(2)
    return torch.randn(batch, chans, samples, generator=g, dtype=dtype).to(device)


def _t30(energy: np.ndarray, sample_rate: float) -> float:
    """RT60 from a T30 fit: Schroeder backward integral, line fit between −5 and −35 dB."""
    edc = np.cumsum(energy[::-1])[::-1]
    edc_db = 10 * np.log10(edc / edc[0] + 1e-300)
    start = int(np.argmax(edc_db <= -5.0))
    stop = int(np.argmax(edc_db <= -35.0))
    assert stop > start + 10, "decay range too short for a T30 fit"
    t = np.arange(len(energy)) / sample_rate
    slope = np.polyfit(t[start:stop], edc_db[start:stop], 1)[0]
    return -60.0 / slope


# ---------------------------------------------------------------------------------------- prng


def _splitmix64_reference(z: int) -> int:
    mask = (1 << 64) - 1
    z &= mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def _to_signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def test_mix64_matches_python_splitmix64() -> None:
    rng = random.Random(0)
    values = [0, 1, 2, (1 << 63) - 1, 1 << 63, (1 << 64) - 1] + [
        rng.getrandbits(64) for _ in range(500)
    ]
    out = mix64(torch.tensor([_to_signed(v) for v in values], dtype=torch.int64)).tolist()
    assert [o & ((1 << 64) - 1) for o in out] == [_splitmix64_reference(v) for v in values]


def test_random_bits_definition() -> None:
    seed, counters = 12345, [0, 1, 7, 1 << 40]
    out = random_bits(as_seed(seed), torch.tensor(counters)).tolist()
    gamma = 0x9E3779B97F4A7C15
    expected = [
        _to_signed(_splitmix64_reference(_splitmix64_reference(seed) + c * gamma)) for c in counters
    ]
    assert out == expected


def test_prng_distributions() -> None:
    counter = torch.arange(100_000)
    seed = as_seed(7)
    z1, z2 = normal_pair(seed, counter, torch.float64)
    for z in (z1, z2):
        assert abs(float(z.mean())) < 0.02 and abs(float(z.var()) - 1) < 0.02
        assert abs(float((z**4).mean()) - 3) < 0.1  # Gaussian kurtosis
    assert abs(float(torch.corrcoef(torch.stack([z1, z2]))[0, 1])) < 0.02
    u1, u2 = uniform_pair(random_bits(seed, counter), torch.float64)
    assert float(u1.min()) > 0 and float(u1.max()) <= 1 and float(u2.min()) >= 0
    assert float(u2.max()) < 1 and abs(float(u2.mean()) - 0.5) < 0.01
    lanes = signed_uniform(seed, counter, torch.float64)
    assert lanes.shape == (100_000, 4)
    assert float(lanes.min()) >= -1 and float(lanes.max()) < 1
    assert abs(float(lanes.mean())) < 0.01 and abs(float(lanes.var()) - 1 / 3) < 0.01
    corr = torch.corrcoef(lanes.T)
    assert (corr - torch.eye(4, dtype=torch.float64)).abs().max() < 0.02


def test_prng_per_item_streams() -> None:
    seeds = torch.tensor([3, 4, 3])
    counter = torch.arange(1000)
    bits = random_bits(seeds[:, None], counter[None])
    assert torch.equal(bits[0], bits[2]) and not torch.equal(bits[0], bits[1])
    assert torch.equal(bits[1], random_bits(as_seed(4), counter))


def test_as_seed_validation() -> None:
    assert as_seed(5, batch=3).tolist() == [5, 5, 5]
    assert as_seed((1 << 64) + 5).tolist() == [5]  # reduced modulo 2**64
    for bad in (1.5, True, torch.tensor([1.0]), torch.zeros(2, 2, dtype=torch.int64)):
        with pytest.raises(ValueError):
            as_seed(bad)
    with pytest.raises(ValueError):
        as_seed(torch.tensor([1, 2, 3]), batch=2)


# ------------------------------------------------------------------------------- convolution


def test_next_fast_len_is_smallest_5_smooth() -> None:
    def smooth(n: int) -> bool:
        for p in (2, 3, 5):
            while n % p == 0:
                n //= p
        return n == 1

    for n in range(1, 3000):
        m = next_fast_len(n)
        assert m >= n and smooth(m)
        assert all(not smooth(k) for k in range(n, m))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_convolve_unit_impulse_is_identity(dtype: torch.dtype) -> None:
    x = _audio(batch=3, samples=500, dtype=dtype)
    impulse = torch.zeros(17, dtype=dtype)
    impulse[0] = 1.0
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(convolve(x, impulse), x, atol=tol, rtol=0)


def test_convolve_delayed_impulse_shifts() -> None:
    x = _audio(batch=1, samples=100)
    impulse = torch.zeros(11, dtype=torch.float64)
    impulse[10] = 1.0
    y = convolve(x, impulse)
    torch.testing.assert_close(y[..., 10:], x[..., :-10], atol=1e-12, rtol=0)
    assert y[..., :10].abs().max() < 1e-12


@pytest.mark.parametrize(
    "ir_shape",
    [(40,), (2, 40), (1, 40), (3, 2, 40), (1, 1, 40), (3, 1, 40), (1, 2, 40), (3, 2, 900)],
)
def test_convolve_matches_numpy(ir_shape: tuple[int, ...]) -> None:
    x = _audio(batch=3, samples=300)
    h = torch.randn(*ir_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    y = convolve(x, h).numpy()
    h3 = h.reshape((1,) * (3 - h.ndim) + tuple(h.shape)).numpy()
    for b in range(3):
        for c in range(2):
            hb = h3[b % h3.shape[0], c % h3.shape[1]]
            ref = np.convolve(x[b, c].numpy(), hb)[:300]
            np.testing.assert_allclose(y[b, c], ref, atol=1e-10)
    ref_scipy = scipy.signal.fftconvolve(
        x.numpy(), np.broadcast_to(h3, (3, 2, ir_shape[-1])), axes=-1
    )
    np.testing.assert_allclose(y, ref_scipy[..., :300], atol=1e-10)


def test_convolve_float32_close_to_float64() -> None:
    x = _audio(batch=2, samples=2000)
    h = torch.randn(2, 700, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    y64 = convolve(x, h)
    y32 = convolve(x.float(), h.float())
    assert y32.dtype == torch.float32 and y32.shape == x.shape
    assert (y32.double() - y64).abs().max() < 1e-4 * y64.abs().max()


def test_convolve_gradcheck() -> None:
    x = _audio(batch=2, samples=20).requires_grad_()
    h = torch.randn(2, 2, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(convolve, (x, h))


def test_convolve_silence() -> None:
    y = convolve(torch.zeros(2, 2, 64), torch.randn(5))
    assert torch.isfinite(y).all() and not (y.abs() > 1e-12).any()


@pytest.mark.parametrize(
    "make",
    [
        lambda: convolve(torch.zeros(2, 64), torch.ones(3)),  # audio ndim
        lambda: convolve(torch.zeros(2, 2, 1), torch.ones(3)),  # 1 sample
        lambda: convolve(torch.full((1, 2, 8), float("nan")), torch.ones(3)),  # NaN audio
        lambda: convolve(torch.zeros(2, 2, 8), torch.ones(1, 1, 1, 3)),  # IR ndim
        lambda: convolve(torch.zeros(2, 2, 8), torch.ones(3, 3)),  # IR channels
        lambda: convolve(torch.zeros(2, 2, 8), torch.ones(3, 2, 3)),  # IR batch
        lambda: convolve(torch.zeros(2, 2, 8), torch.ones(0)),  # no taps
        lambda: convolve(torch.zeros(2, 2, 8), torch.ones(3, dtype=torch.int64)),  # int IR
        lambda: convolve(torch.zeros(2, 2, 8), torch.tensor([1.0, float("nan")])),  # NaN IR
        lambda: convolve(torch.zeros(2, 2, 8), [1.0, 0.5]),  # not a tensor
    ],
)
def test_convolve_bad_input_raises(make) -> None:
    with pytest.raises(ValueError):
        make()


# ----------------------------------------------------------------------- impulse response


def test_ir_shape_default_length_and_unit_energy() -> None:
    rt60 = torch.tensor([0.3, 0.8, 0.5])
    predelay = torch.tensor([20.0, 0.0, 5.0])
    ir = reverb_impulse_response(SR, rt60, predelay, 0.2, torch.tensor([1, 2, 3]))
    expected_taps = math.ceil((0.8 * TAIL_RT60_FACTOR) * SR)  # longest: predelay 0 + 1.5·0.8 s
    assert ir.shape == (3, 2, expected_taps) and ir.dtype == torch.float32
    energy = ir.double().square().sum(dim=-1)
    torch.testing.assert_close(energy, torch.ones_like(energy), atol=1e-5, rtol=0)
    assert torch.isfinite(ir).all()


@pytest.mark.parametrize("rt60", [0.2, 0.5, 1.0, 2.0, 4.0])
def test_ir_rt60_broadband(rt60: float) -> None:
    ir = reverb_impulse_response(SR, rt60, 0.0, 0.0, 1234, dtype=torch.float64).numpy()[0]
    for channel in ir:
        measured = _t30(channel**2, SR)
        assert abs(measured / rt60 - 1) < 0.1, f"T30 {measured:.3f} s for rt60 {rt60} s"


@pytest.mark.parametrize(("rt60", "damping"), [(2.0, 0.5), (1.0, 1.0), (0.5, 0.7)])
def test_ir_damping_shortens_high_band_only(rt60: float, damping: float) -> None:
    # Ensemble energy of 8 items x 2 channels keeps the band-limited T30 estimate steady.
    irs = reverb_impulse_response(SR, rt60, 0.0, damping, torch.arange(8), dtype=torch.float64)
    irs = irs.numpy().reshape(16, -1)
    low = scipy.signal.butter(4, 100, "lowpass", fs=SR, output="sos")
    high = scipy.signal.butter(4, [12000, 18000], "bandpass", fs=SR, output="sos")
    low_rt = _t30((scipy.signal.sosfilt(low, irs, axis=-1) ** 2).sum(0), SR)
    high_rt = _t30((scipy.signal.sosfilt(high, irs, axis=-1) ** 2).sum(0), SR)
    assert abs(low_rt / rt60 - 1) < 0.1
    expected_high = rt60 * DAMPING_MIN_RATIO**damping
    assert abs(high_rt / expected_high - 1) < 0.1
    assert high_rt < 0.8 * low_rt


@pytest.mark.parametrize("seed", [0, 1, 99])
def test_ir_left_right_decorrelated(seed: int) -> None:
    ir = reverb_impulse_response(SR, 1.0, 0.0, 0.3, seed, dtype=torch.float64).numpy()[0]
    left, right = ir
    norm = math.sqrt(np.sum(left**2) * np.sum(right**2))
    assert abs(np.sum(left * right)) / norm < 0.1
    xcorr = scipy.signal.correlate(left, right, mode="full", method="fft") / norm
    mid = len(left) - 1
    lag = int(0.01 * SR)
    assert np.abs(xcorr[mid - lag : mid + lag + 1]).max() < 0.1


def test_ir_determinism_and_batch_consistency() -> None:
    rt60 = torch.tensor([0.4, 1.2, 0.7])
    predelay = torch.tensor([3.3, 0.0, 12.0])
    damping = torch.tensor([0.0, 0.5, 1.0])
    seeds = torch.tensor([11, 12, 13])
    a = reverb_impulse_response(SR, rt60, predelay, damping, seeds, length=30000)
    b = reverb_impulse_response(SR, rt60, predelay, damping, seeds, length=30000)
    assert torch.equal(a, b)
    c = reverb_impulse_response(
        SR, rt60, predelay, damping, torch.tensor([11, 14, 13]), length=30000
    )
    assert torch.equal(a[0], c[0]) and not torch.allclose(a[1], c[1], atol=1e-3)
    for i in range(3):
        alone = reverb_impulse_response(
            SR, float(rt60[i]), float(predelay[i]), float(damping[i]), int(seeds[i]), length=30000
        )
        assert torch.equal(a[i : i + 1], alone)


def test_ir_seed_int_equals_tensor_and_dtypes_agree() -> None:
    a = reverb_impulse_response(SR, 0.5, 2.0, 0.4, 5, batch_size=2, dtype=torch.float64)
    b = reverb_impulse_response(SR, 0.5, 2.0, 0.4, torch.tensor([5, 5]), dtype=torch.float64)
    assert torch.equal(a, b) and torch.equal(a[0], a[1])
    c = reverb_impulse_response(SR, 0.5, 2.0, 0.4, 5, dtype=torch.float32)
    assert c.dtype == torch.float32
    assert (c.double() - a[:1]).abs().max() < 1e-5  # same noise, float32 rounding only


def test_ir_predelay_integer_and_fractional() -> None:
    sr = 8000.0
    length = 2000
    base = reverb_impulse_response(sr, 0.1, 0.0, 0.0, 3, length=length, dtype=torch.float64)
    # 2.5 ms = 20 samples exactly: silence then the undelayed tail (renormalized)
    d20 = reverb_impulse_response(sr, 0.1, 2.5, 0.0, 3, length=length, dtype=torch.float64)
    assert not d20[..., :20].any()
    ref = base[..., : length - 20]
    ref = ref / ref.square().sum(-1, keepdim=True).sqrt()
    torch.testing.assert_close(d20[..., 20:], ref, atol=1e-12, rtol=0)
    # 2.5625 ms = 20.5 samples: linear interpolation between the 20- and 21-sample shifts
    d205 = reverb_impulse_response(sr, 0.1, 2.5625, 0.0, 3, length=length, dtype=torch.float64)
    tail = base[0]
    shifted = torch.zeros(2, length, dtype=torch.float64)
    shifted[:, 20:] += 0.5 * tail[:, : length - 20]
    shifted[:, 21:] += 0.5 * tail[:, : length - 21]
    shifted = shifted / shifted.square().sum(-1, keepdim=True).sqrt()
    torch.testing.assert_close(d205[0], shifted, atol=1e-12, rtol=0)


def test_ir_gradients_flow() -> None:
    rt60 = torch.tensor([0.05, 0.08], dtype=torch.float64, requires_grad=True)
    predelay = torch.tensor([1.3, 0.7], dtype=torch.float64, requires_grad=True)
    damping = torch.tensor([0.2, 0.6], dtype=torch.float64, requires_grad=True)

    def f(r, p, d):
        return reverb_impulse_response(8000.0, r, p, d, torch.tensor([1, 2]), length=40)

    assert torch.autograd.gradcheck(f, (rt60, predelay, damping))


# ------------------------------------------------------------------------------------ reverb


def test_reverb_mix_zero_is_identity_and_mix_one_is_convolution() -> None:
    x = _audio(batch=2, samples=3000)
    seeds = torch.tensor([4, 8])
    assert torch.equal(reverb(x, SR, 0.05, 1.0, 0.3, 0.0, seeds), x)
    wet = reverb(x, SR, 0.05, 1.0, 0.3, 1.0, seeds)
    ir = reverb_impulse_response(SR, 0.05, 1.0, 0.3, seeds, dtype=torch.float64).numpy()
    for b in range(2):
        for c in range(2):
            ref = np.convolve(x[b, c].numpy(), ir[b, c])[:3000]
            np.testing.assert_allclose(wet[b, c].numpy(), ref, atol=1e-10)
    half = reverb(x, SR, 0.05, 1.0, 0.3, 0.25, seeds)
    torch.testing.assert_close(half, 0.75 * x + 0.25 * wet, atol=1e-12, rtol=0)


def test_reverb_mono_uses_left_ir() -> None:
    x = _audio(batch=1, chans=1, samples=2000)
    y = reverb(x, SR, 0.03, 0.0, 0.0, 1.0, 6)
    ir = reverb_impulse_response(SR, 0.03, 0.0, 0.0, 6, dtype=torch.float64)
    assert y.shape == x.shape
    torch.testing.assert_close(y, convolve(x, ir[:, :1]), atol=1e-12, rtol=0)


def test_reverb_output_rt60() -> None:
    # an impulse through the fully wet reverb is the IR: its T30 matches rt60
    x = torch.zeros(1, 2, SR, dtype=torch.float64)
    x[..., 0] = 1.0
    y = reverb(x, SR, 0.6, 0.0, 0.0, 1.0, 21).numpy()[0]
    for channel in y:
        assert abs(_t30(channel**2, SR) / 0.6 - 1) < 0.1


def test_reverb_batch_item_equals_item_alone() -> None:
    x = _audio(batch=3, samples=4000, dtype=torch.float32)
    rt60 = torch.tensor([0.05, 0.2, 0.1])
    predelay = torch.tensor([0.0, 4.1, 10.0])
    damping = torch.tensor([0.1, 0.9, 0.5])
    mix = torch.tensor([0.2, 0.5, 1.0])
    seeds = torch.tensor([1, 2, 3])
    y = reverb(x, SR, rt60, predelay, damping, mix, seeds, ir_length=6000)
    for i in range(3):
        yi = reverb(
            x[i : i + 1], SR, rt60[i : i + 1], predelay[i : i + 1], damping[i : i + 1],
            mix[i : i + 1], seeds[i : i + 1], ir_length=6000,
        )  # fmt: skip
        torch.testing.assert_close(y[i : i + 1], yi, atol=1e-6, rtol=0)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chans", [1, 2])
def test_reverb_shape_dtype_device(device: str, dtype: torch.dtype, chans: int) -> None:
    x = _audio(batch=2, chans=chans, samples=1000, dtype=dtype, device=device)
    seeds = torch.tensor([1, 2], device=device)
    y = reverb(x, SR, torch.tensor([0.1, 0.3], device=device), 5.0, 0.5, 0.5, seeds)
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert torch.isfinite(y).all()


def test_reverb_silence_in_silence_out() -> None:
    for dtype in (torch.float32, torch.float64):
        y = reverb(torch.zeros(2, 2, 500, dtype=dtype), SR, 1.0, 10.0, 0.5, 0.7, 0)
        assert torch.isfinite(y).all() and not (y.abs() > 0).any()


def _short_reverb_inputs():
    x = _audio(batch=2, samples=40).requires_grad_()
    rt60 = torch.tensor([0.03, 0.05], dtype=torch.float64, requires_grad=True)
    predelay = torch.tensor([0.3, 1.1], dtype=torch.float64, requires_grad=True)  # 2.4, 8.8 smp
    damping = torch.tensor([0.3, 0.8], dtype=torch.float64, requires_grad=True)
    mix = torch.tensor([0.4, 0.9], dtype=torch.float64, requires_grad=True)
    return x, rt60, predelay, damping, mix


def test_reverb_gradcheck() -> None:
    seeds = torch.tensor([5, 6])

    def f(x, rt60, predelay, damping, mix):
        return reverb(x, 8000.0, rt60, predelay, damping, mix, seeds, ir_length=32)

    assert torch.autograd.gradcheck(f, _short_reverb_inputs())


def test_reverb_gradients_nonzero_for_every_parameter() -> None:
    inputs = _short_reverb_inputs()
    y = reverb(inputs[0], 8000.0, *inputs[1:], torch.tensor([5, 6]), ir_length=32)
    y.square().sum().backward()
    for t in inputs:
        assert torch.isfinite(t.grad).all() and (t.grad.abs() > 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("rt60", "predelay", "damping", "mix"),
    [
        (1e-3, 0.0, 0.0, 0.0),
        (10.0, 500.0, 1.0, 1.0),
        (1e-3, 500.0, 1.0, 0.0),
        (10.0, 0.0, 0.0, 1.0),
    ],
)
def test_reverb_finite_gradients_at_range_edges(dtype, rt60, predelay, damping, mix) -> None:
    sr = 2000.0
    x = _audio(batch=1, samples=300, dtype=dtype).requires_grad_()
    params = [
        torch.tensor([v], dtype=dtype, requires_grad=True) for v in (rt60, predelay, damping, mix)
    ]
    y = reverb(x, sr, *params, 3, ir_length=1200)
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    for t in (x, *params):
        assert torch.isfinite(t.grad).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": torch.zeros(2, 100)}, r"^x must have shape \(batch, channels, samples\)"),
        ({"x": torch.zeros(1, 2, 1)}, r"^x has 1 samples; at least 2 are needed"),
        ({"x": torch.zeros(1, 3, 100)}, r"^x must have 1 or 2 channel\(s\), got 3"),
        ({"x": torch.full((1, 2, 100), math.nan)}, r"^x contains non-finite values"),
        ({"sample_rate": 0.0}, r"^sample_rate must be a positive finite number, got 0"),
        ({"sample_rate": -44100.0}, r"^sample_rate must be a positive finite number"),
        ({"rt60_s": 0.0}, r"^rt60_s must be > 0 \(range \(0, 10\.0\]\), got \[0\.0, 0\.0\]$"),
        ({"rt60_s": -1.0}, r"^rt60_s=-1 is below its minimum 0 \(range \[0\.0, 10\.0\]\)$"),
        ({"rt60_s": 10.5}, r"^rt60_s=10\.5 is above its maximum 10 "),
        ({"rt60_s": math.nan}, r"^rt60_s must be finite, got \[nan, nan\]$"),
        (
            {"predelay_ms": -1.0},
            r"^predelay_ms=-1 is below its minimum 0 \(range \[0\.0, 500\.0\]\)$",
        ),
        ({"predelay_ms": 501.0}, r"^predelay_ms=501 is above its maximum 500 "),
        ({"predelay_ms": math.nan}, r"^predelay_ms must be finite"),
        ({"damping": 1.5}, r"^damping=1\.5 is above its maximum 1 \(range \[0\.0, 1\.0\]\)$"),
        ({"damping": -0.5}, r"^damping=-0\.5 is below its minimum 0 "),
        ({"damping": math.nan}, r"^damping must be finite"),
        ({"mix": -0.1}, r"^mix=-0\.1 is below its minimum 0 "),
        ({"mix": 1.1}, r"^mix=1\.1 is above its maximum 1 "),
        (
            {"rt60_s": torch.tensor([0.5, 0.6, 0.7])},
            r"^rt60_s must be a number or a \(batch,\) tensor with batch=2, got shape \(3,\)$",
        ),
        ({"mix": torch.ones(2, 2)}, r"^mix must be a number or a \(batch,\) tensor with batch=2"),
        ({"seed": torch.tensor([1, 2, 3])}, r"^seed has 3 values but the batch has 2 items$"),
        ({"seed": 1.5}, r"^seed must be an int or an integer tensor, got float$"),
        ({"ir_length": 0}, r"^ir_length must be a positive int \(samples\), got 0$"),
    ],
)
def test_reverb_bad_input_names_the_problem(kwargs, message: str) -> None:
    args = {
        "x": torch.zeros(2, 2, 100),
        "sample_rate": 8000.0,
        "rt60_s": 0.5,
        "predelay_ms": 0.0,
        "damping": 0.0,
        "mix": 0.5,
        "seed": 0,
        "ir_length": None,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        reverb(**args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": math.nan}, r"^sample_rate must be a positive finite number, got nan"),
        (
            {"rt60_s": torch.tensor([0.5, 0.6]), "damping": torch.tensor([0.1, 0.2, 0.3])},
            r"^parameters have mismatched batch sizes: \{'rt60_s': 2, 'damping': 3\}$",
        ),
        (
            {"predelay_ms": torch.tensor([1.0, 2.0]), "seed": torch.tensor([1, 2, 3])},
            r"^parameters have mismatched batch sizes: \{'predelay_ms': 2, 'seed': 3\}$",
        ),
        (
            {"rt60_s": torch.tensor([0.5, 0.6]), "batch_size": 3},
            r"^parameters have mismatched batch sizes: \{'rt60_s': 2, 'batch_size': 3\}$",
        ),
        ({"batch_size": 0}, r"^batch_size must be a positive int, got 0$"),
        ({"batch_size": True}, r"^batch_size must be a positive int, got True$"),
        ({"batch_size": 1.0}, r"^batch_size must be a positive int, got 1\.0$"),
        ({"length": -5}, r"^length must be a positive int \(samples\), got -5$"),
        ({"length": 2.5}, r"^length must be a positive int \(samples\), got 2\.5$"),
        ({"dtype": torch.int32}, r"^dtype must be a floating dtype, got torch.int32$"),
        ({"predelay_ms": 501.0}, r"^predelay_ms=501 is above its maximum 500"),
        ({"predelay_ms": -1.0}, r"^predelay_ms=-1 is below its minimum 0 "),
        ({"damping": -0.1}, r"^damping=-0\.1 is below its minimum 0"),
        ({"damping": 1.5}, r"^damping=1\.5 is above its maximum 1 "),
        ({"rt60_s": -1.0}, r"^rt60_s=-1 is below its minimum 0 \(range \[0\.0, 10\.0\]\)$"),
        ({"rt60_s": 10.5}, r"^rt60_s=10\.5 is above its maximum 10 "),
        ({"rt60_s": math.nan}, r"^rt60_s must be finite"),
    ],
)
def test_ir_bad_input_names_the_problem(kwargs, message: str) -> None:
    args = {"sample_rate": 8000.0, "rt60_s": 0.5, "predelay_ms": 0.0, "damping": 0.0, "seed": 0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        reverb_impulse_response(**args)


def test_ir_batch_size_and_dtype_follow_the_parameters() -> None:
    # batch_size=1 is accepted; a lone batch_size sets the batch
    assert reverb_impulse_response(8000.0, 0.5, 0.0, 0.0, 0, batch_size=1).shape[0] == 1
    assert reverb_impulse_response(8000.0, 0.5, 0.0, 0.0, 0, batch_size=3).shape[0] == 3
    # the first floating tensor parameter sets the dtype; numbers follow it
    f64 = torch.tensor([0.5, 0.6], dtype=torch.float64)
    ir = reverb_impulse_response(8000.0, 0.5, f64, torch.tensor([0.1, 0.2]), 0)
    assert ir.dtype == torch.float64
    assert reverb_impulse_response(8000.0, 0.5, 0.0, 0.0, 0).dtype == torch.get_default_dtype()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    counter = torch.arange(10_000)
    assert torch.equal(
        random_bits(as_seed(3), counter),
        random_bits(as_seed(3, device="cuda"), counter.cuda()).cpu(),
    )
    seeds = torch.tensor([1, 2])
    ir_cpu = reverb_impulse_response(SR, 0.5, 3.3, 0.4, seeds, dtype=torch.float64)
    ir_gpu = reverb_impulse_response(SR, 0.5, 3.3, 0.4, seeds.cuda(), dtype=torch.float64)
    torch.testing.assert_close(ir_gpu.cpu(), ir_cpu, atol=1e-10, rtol=0)


# 3013 and 3014: the tail starts (keep - longest shift 966) one sample before and exactly on a
# noise-frame boundary (hop 512 at 48 kHz), where the first tail sample needs the previous frame.
@pytest.mark.parametrize("keep", [1000, 3013, 3014, 140_000])
def test_ir_cut_short_keeps_the_full_irs_normalisation(keep: int) -> None:
    """Building only ``keep`` samples (the energy of the rest summed in chunks of 2^17) gives
    exactly the first ``keep`` samples of the full unit-energy IR: a tail three chunks long,
    items with different integer and fractional predelays."""
    from fxdsp.functional.reverb import _impulse_response
    from fxdsp.prng import as_seed

    sr, taps = 48000.0, 3 * (1 << 17) + 517  # 8.2 s: the last chunk is still ~-50 dB
    rt60 = torch.tensor([10.0, 8.0], dtype=torch.float64)
    pre = torch.tensor([0.07, 20.13], dtype=torch.float64)  # 3.36 and 966.24 samples
    damp = torch.tensor([0.2, 0.7], dtype=torch.float64)
    seeds = as_seed(torch.tensor([5, 9]), 2, rt60.device)
    full = _impulse_response(sr, rt60, pre, damp, seeds, taps, taps)
    cut = _impulse_response(sr, rt60, pre, damp, seeds, taps, keep)
    torch.testing.assert_close(cut, full[..., :keep], rtol=1e-12, atol=1e-15)
    # every chunk of the tail carries energy far above the comparison's tolerance
    chunks = full[..., keep:].square().split(1 << 17, dim=-1)
    assert min(float(c.sum()) for c in chunks) > 1e-9


def test_the_requested_device_reaches_the_batch_and_the_seeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The device argument (else the parameters' device, else the CPU) is where the IR and its
    seeds are made. The meta device stands in for an accelerator where the IR cannot be built."""
    import importlib

    rv = importlib.import_module("fxdsp.functional.reverb")  # the module, not the function

    meta = torch.zeros(3, device="meta")
    assert rv._common_batch({"rt60_s": meta, "seed": 1}, None, None, None)[:2] == (
        3,
        torch.device("meta"),
    )
    assert rv._common_batch({"rt60_s": 0.5}, None, None, None)[1] == torch.device("cpu")
    assert rv._common_batch({"rt60_s": meta}, None, "cpu", None)[1] == torch.device("cpu")
    asked: list[object] = []
    real_batch, real_seed = rv._common_batch, rv.as_seed

    def common_batch(params: dict, batch_size: object, device: object, dtype: object) -> tuple:
        asked.append(device)
        return real_batch(params, batch_size, device, dtype)

    def seed_on(seed: object, batch: int, device: object) -> torch.Tensor:
        asked.append(device)
        return real_seed(seed, batch, device)

    monkeypatch.setattr(rv, "_common_batch", common_batch)
    monkeypatch.setattr(rv, "as_seed", seed_on)
    rv.reverb_impulse_response(SR, 0.2, 1.0, 0.5, 4, device="cpu", length=256)
    assert asked == ["cpu", torch.device("cpu")]


def test_convolve_errors_name_the_problem_exactly() -> None:
    x = torch.zeros(2, 2, 64)
    h = torch.zeros(2, 2, 8)
    cases = [
        ([0.5, 0.5], "impulse_response must be a torch.Tensor, got list"),
        (h.int(), "impulse_response must be floating point, got dtype torch.int32"),
        (h.to("meta"), "impulse_response is on meta but the audio is on cpu"),
        (torch.zeros(1, 2, 2, 8),
         "impulse_response must be (taps,), (channels, taps) or (batch, channels, taps), got "
         "shape (1, 2, 2, 8)"),
        (torch.zeros(2, 2, 0), "impulse_response has no taps"),
        (torch.zeros(3, 2, 8), "impulse_response batch 3 does not match the audio's 2"),
        (torch.zeros(2, 3, 8), "impulse_response has 3 channels; the audio has 2 (use 1 or 2)"),
    ]  # fmt: skip
    for bad, message in cases:
        with pytest.raises(ValueError) as info:
            convolve(x, bad)  # type: ignore[arg-type]
        assert str(info.value) == message
    with pytest.raises(ValueError) as info:
        convolve(x, torch.full((8,), float("nan")))
    assert str(info.value).startswith("impulse_response ")
    # A one-tap impulse response is a gain: the convolution is exact.
    y = convolve(x + 1.0, torch.tensor([0.5]))
    assert torch.equal(y, torch.full_like(x, 0.5))


def test_ir_length_default_formula_and_limits_exactly() -> None:
    from fxdsp.functional.reverb import MAX_IR_SECONDS

    ir = reverb_impulse_response(SR, torch.tensor([0.5, 1.0]), torch.tensor([30.0, 40.0]), 0.5, 1)
    # the item that needs the longest: 40 ms + 1.5 · 1 s
    assert ir.shape[-1] == math.ceil((0.040 + TAIL_RT60_FACTOR * 1.0) * SR)
    ir = reverb_impulse_response(SR, torch.tensor([0.5, 1.0]), torch.tensor([30.0, 10.0]), 0.5, 1)
    # ... here 10 ms + 1.5 · 1 s, not max predelay + max rt60
    assert ir.shape[-1] == math.ceil((0.010 + TAIL_RT60_FACTOR * 1.0) * SR)
    assert reverb_impulse_response(SR, 0.5, 0.0, 0.5, 1, length=1).shape == (1, 2, 1)
    too_long = math.floor(MAX_IR_SECONDS * SR) + 1
    with pytest.raises(ValueError) as info:
        reverb_impulse_response(SR, 0.5, 0.0, 0.5, 1, length=too_long)
    assert str(info.value) == (
        f"length={too_long} samples ({too_long / SR:.4g} s) is above the maximum IR length "
        f"MAX_IR_SECONDS={MAX_IR_SECONDS:g} s ({too_long - 1} samples at {SR:g} Hz)"
    )


def test_overflow_is_reported_by_the_effect_that_overflowed() -> None:
    """float16 audio whose convolution or reverb exceeds float16's range is refused, named; a
    float32 input scaled by a power of two (peak above 2) that overflows float32 too."""
    loud16 = torch.full((1, 2, 256), 30000.0, dtype=torch.float16)
    with pytest.raises(ValueError) as info:
        convolve(loud16, torch.ones(8))
    assert str(info.value) == (
        "convolve: the result overflows torch.float16 (its largest values exceed 6.55e+04); "
        "scale the input down"
    )
    huge = torch.full((1, 2, 256), 3e38)  # float32, peak above 2: computed scaled
    with pytest.raises(ValueError) as info:
        convolve(huge, torch.ones(8))
    assert str(info.value).startswith("convolve: the result overflows torch.float32")
    with pytest.raises(ValueError) as info:
        convolve(torch.ones(1, 2, 256), torch.full((8,), 3e38))  # the IR scaled, not the audio
    assert str(info.value).startswith("convolve: the result overflows torch.float32")
    with pytest.raises(ValueError) as info:
        reverb(huge, SR, 0.3, 0.0, 0.5, 1.0, 1, ir_length=512)
    assert str(info.value).startswith("reverb: the result overflows torch.float32")


def _band_masks_loop(sr: float, n_fft: int) -> np.ndarray:
    """Per crossover f_c: s(f) = sin²(π/2 · clip(log2(f / f_c) + 1/2, 0, 1)) (0 half an octave
    below, 1 half an octave above, 1/2 at f_c); band b = s_{b-1} - s_b with s_{-1} = 1 and
    s_{last} = 0: masks that sum to 1 per bin. A float64 loop on the FFT bins."""
    from fxdsp.functional.reverb import BAND_CROSSOVERS_HZ

    want = np.zeros((len(BAND_CROSSOVERS_HZ) + 1, n_fft // 2 + 1))
    for k in range(n_fft // 2 + 1):
        f = max(k * sr / n_fft, 1e-3)
        s = [1.0]
        for fc in BAND_CROSSOVERS_HZ:
            pos = min(max(math.log2(f / fc) + 0.5, 0.0), 1.0)
            s.append(math.sin(math.pi / 2 * pos) ** 2)
        s.append(0.0)
        for b in range(len(BAND_CROSSOVERS_HZ) + 1):
            want[b, k] = s[b] - s[b + 1]
    return want


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
# bin spacings 46.875 Hz (exact) and 44100.5 / 1024 Hz, whose multiples float32 rounds
@pytest.mark.parametrize("sr", [48000.0, 44100.5])
def test_band_masks_against_their_definition(dtype: torch.dtype, sr: float) -> None:
    from fxdsp.functional.reverb import BAND_CROSSOVERS_HZ, _band_masks, _frame_size

    n_fft = _frame_size(sr)
    assert n_fft == 1024 and _frame_size(44100.0) == 1024 and _frame_size(8000.0) == 256
    assert _frame_size(100.0) == 16  # at least 16
    masks = _band_masks(sr, n_fft, torch.device("cpu"), dtype)
    assert masks.dtype == dtype and masks.shape == (len(BAND_CROSSOVERS_HZ) + 1, n_fft // 2 + 1)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(masks.double().numpy(), _band_masks_loop(sr, n_fft), atol=tol,
                               rtol=0)  # fmt: skip


def test_decaying_noise_against_a_float64_loop() -> None:
    """The reverb's tail, frame by frame in float64 from its definition: frame k's spectrum is
    uniform noise (``signed_uniform`` of counter channel·2^52 + k·2^20 + j, two bins per j) times
    Σ_b mask_b(f) · exp(−ln 1000 · t_k / rt60_b), t_k = k · hop / sr, rt60_b = rt60 ·
    DAMPING_MIN_RATIO^(damping · b / (bands − 1)); an orthonormal inverse FFT, a sine window
    sin(π (n + ½) / N), and 50 % overlap-add (block m = second half of frame m + first half of
    frame m + 1). From block 3 on, so the frame index is the absolute one."""
    from fxdsp.functional.reverb import _decaying_noise, _frame_size

    sr, samples, first = 44100.0, 1500, 3
    rt60 = torch.tensor([0.4, 0.25], dtype=torch.float64)
    damping = torch.tensor([0.7, 0.0], dtype=torch.float64)
    seeds = torch.tensor([5, 9])
    got = _decaying_noise(sr, rt60, damping, seeds, samples, start_block=first)
    assert got.dtype == torch.float64 and got.shape == (2, 2, samples)

    n_fft = _frame_size(sr)
    hop, n_bins = n_fft // 2, n_fft // 2 + 1
    n_pairs = (n_bins + 1) // 2
    masks = _band_masks_loop(sr, n_fft)
    bands = masks.shape[0]
    blocks = -(-samples // hop)
    window = np.sin(np.pi * (np.arange(n_fft) + 0.5) / n_fft)
    want = np.zeros((2, 2, blocks * hop))
    for b in range(2):
        rt60_band = [float(rt60[b]) * DAMPING_MIN_RATIO ** (float(damping[b]) * i / (bands - 1))
                     for i in range(bands)]  # fmt: skip
        for c in range(2):
            frames = []
            for k in range(first, first + blocks + 1):
                counter = torch.tensor([(c << 52) + (k << 20) + j for j in range(n_pairs)])
                u = signed_uniform(seeds[b], counter, torch.float64).numpy().reshape(-1, 2)
                gain = np.zeros(n_bins)
                for i in range(bands):
                    gain += masks[i] * math.exp(-math.log(1000.0) * k * hop / sr / rt60_band[i])
                spectrum = (u[:n_bins, 0] + 1j * u[:n_bins, 1]) * gain
                frames.append(np.fft.irfft(spectrum, n=n_fft, norm="ortho") * window)
            for m in range(blocks):
                want[b, c, m * hop : (m + 1) * hop] = frames[m][hop:] + frames[m + 1][:hop]
    want = want[..., :samples]
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12 * np.abs(want).max())
    # The same tail on the meta device (an accelerator's stand-in): every tensor it makes is
    # made there, not on the CPU.
    meta = _decaying_noise(sr, rt60.to("meta"), damping.to("meta"), seeds.to("meta"), samples)
    assert meta.device.type == "meta" and meta.shape == got.shape and meta.dtype == got.dtype


@pytest.mark.parametrize("samples, taps", [(100, 30), (100, 26), (97, 32)])
def test_convolve_at_5_smooth_sizes_has_no_wraparound(samples: int, taps: int) -> None:
    """The FFT size is the smallest 5-smooth length >= T + K - 1: at T + K - 1 = 129 one
    sample less (128, 5-smooth) would wrap the last product onto the first output sample; at
    125 (odd) the inverse FFT must be told its length; at 128 the size is T + K - 1 itself."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 2, samples, generator=g, dtype=torch.float64)
    h = torch.randn(1, 2, taps, generator=g, dtype=torch.float64)
    want = np.stack([np.convolve(x[0, c].numpy(), h[0, c].numpy())[:samples] for c in range(2)])
    np.testing.assert_allclose(convolve(x, h)[0].numpy(), want, rtol=0, atol=1e-12)


def test_ir_all_predelay_is_silent_and_finite() -> None:
    """An IR cut short before its predelay ends has no energy: it is zeros, not NaN."""
    ir = reverb_impulse_response(SR, 0.5, 100.0, 0.5, 1, length=256)  # 4410 samples of predelay
    assert torch.equal(ir, torch.zeros(1, 2, 256))


def test_ir_default_length_is_at_least_two_taps() -> None:
    """At a low rate a short reverb needs fewer than two samples; the default keeps two."""
    ir = reverb_impulse_response(100.0, 0.01, 0.0, 0.5, 1)  # (0 + 1.5 · 0.01) s · 100 Hz = 1.5
    assert ir.shape == (1, 2, 2)
    ir = reverb_impulse_response(100.0, 0.02, 0.0, 0.5, 1)  # 3 samples: the formula
    assert ir.shape == (1, 2, 3)
