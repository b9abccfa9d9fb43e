"""Regression tests for bad-input edge cases of fxdsp.functional found by an adversarial probe.

Each test measures a quantity against an independent reference (scipy, a closed form, the
float32 result, an exact power-of-two rescaling) instead of only checking that a call returns.
"""

from __future__ import annotations

import importlib
import math
import warnings

import numpy as np
import pytest
import scipy.signal
import torch

from fxdsp import functional as F
from fxdsp._checks import check_audio
from fxdsp.kernels.iir import sosfilt_scan

SR = 16000
# the module, not the function of the same name that fxdsp.functional exports
reverb_mod = importlib.import_module("fxdsp.functional.reverb")


def _noise(batch: int = 2, chans: int = 2, samples: int = 8000, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (0.1 * torch.randn(batch, chans, samples, generator=g, dtype=torch.float64)).to(dtype)


# ------------------------------------------------------------------- 1. reverb IR length bound


def test_reverb_ir_length_has_a_documented_maximum() -> None:
    sr = 1000.0
    too_long = math.ceil((reverb_mod.MAX_IR_SECONDS + 1.0) * sr)
    with pytest.raises(ValueError, match=r"length.*maximum"):
        F.reverb_impulse_response(sr, 1.0, 0.0, 0.0, 0, length=too_long)
    x = _noise(1, 2, 2000)
    with pytest.raises(ValueError, match=r"ir_length.*maximum"):
        F.reverb(x, sr, 1.0, 0.0, 0.0, 0.5, 0, ir_length=10**9)
    # the maximum itself is accepted (and cheap at this rate)
    ir = F.reverb_impulse_response(sr, 1.0, 0.0, 0.0, 0, length=int(reverb_mod.MAX_IR_SECONDS * sr))
    assert ir.shape == (1, 2, int(reverb_mod.MAX_IR_SECONDS * sr))


@pytest.mark.parametrize("predelay", [0.0, 12.3])
def test_reverb_with_ir_longer_than_clip_equals_full_ir_convolution(predelay: float) -> None:
    # rt60 2 s -> a 3 s IR for a 0.25 s clip: reverb() only builds the part that reaches the
    # output; the result must equal the convolution with the full-length IR (scipy reference).
    x = _noise(2, 2, 4000, dtype=torch.float64)
    rt60 = torch.tensor([2.0, 1.2], dtype=torch.float64)
    seeds = torch.tensor([3, 11])
    y = F.reverb(x, SR, rt60, predelay, 0.6, 0.4, seeds)
    ir = F.reverb_impulse_response(SR, rt60, predelay, 0.6, seeds, dtype=torch.float64)
    assert ir.shape[-1] > 10 * x.shape[-1]
    wet = scipy.signal.fftconvolve(x.numpy(), ir.numpy(), axes=-1)[..., : x.shape[-1]]
    expected = 0.6 * x.numpy() + 0.4 * wet
    np.testing.assert_allclose(y.numpy(), expected, rtol=0, atol=1e-12)
    # explicit ir_length much longer than the clip: same rule
    y2 = F.reverb(x, SR, rt60, predelay, 0.6, 0.4, seeds, ir_length=3 * SR)
    ir2 = F.reverb_impulse_response(
        SR, rt60, predelay, 0.6, seeds, length=3 * SR, dtype=torch.float64
    )
    wet2 = scipy.signal.fftconvolve(x.numpy(), ir2.numpy(), axes=-1)[..., : x.shape[-1]]
    np.testing.assert_allclose(y2.numpy(), 0.6 * x.numpy() + 0.4 * wet2, rtol=0, atol=1e-12)


def test_reverb_truncated_head_is_bit_identical_to_full_ir_head() -> None:
    # The noise is a pure function of (seed, channel, frame, bin): the first samples of the tail
    # do not depend on how many are generated.
    rt60 = torch.tensor([2.0, 0.7])
    damp = torch.tensor([0.3, 1.0])
    seeds = torch.tensor([5, 9])
    full = reverb_mod._decaying_noise(SR, rt60, damp, seeds, 40000)
    head = reverb_mod._decaying_noise(SR, rt60, damp, seeds, 3000)
    assert torch.equal(full[..., :3000], head)


# ---------------------------------------------------------------- 2. second-order gradients


def _second_order(fn, x: torch.Tensor) -> None:
    y = fn(x)
    (g,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    torch.autograd.grad(g.sum(), x)


def test_sosfilt_cpu_refuses_double_backward() -> None:
    x = _noise(1, 2, 200, dtype=torch.float64).requires_grad_()
    sos = F.k_weighting_sos(SR)
    with pytest.raises(RuntimeError, match="second-order"):
        _second_order(lambda v: F.sosfilt(v, sos), x)
    with pytest.raises(RuntimeError, match="second-order"):
        _second_order(lambda v: F.parametric_eq(v, SR, 6.0, 1000.0, 1.0, ("peak",)), x)
    # first-order gradients are unaffected (closed form: a gain section b0 = 2 doubles grad)
    gain_sos = torch.tensor([[2.0, 0.0, 0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    (g,) = torch.autograd.grad(F.sosfilt(x, gain_sos).sum(), x)
    assert torch.allclose(g, torch.full_like(g, 2.0))


def test_compressor_refuses_double_backward() -> None:
    x = _noise(1, 2, 400, dtype=torch.float64).requires_grad_()
    with pytest.raises(RuntimeError, match="second-order"):
        _second_order(lambda v: F.compressor(v, SR, -30.0, 4.0, 5.0, 50.0), x)


def test_sosfilt_scan_is_twice_differentiable() -> None:
    # The plain-torch scan (the non-CPU path) supports double backward: gradgradcheck passes.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 24, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[[0.5, 0.2, 0.1]], [[1.0, -0.3, 0.2]]], dtype=torch.float64)
    a = torch.tensor([[[-0.4, 0.1]], [[0.3, 0.2]]], dtype=torch.float64)
    b.requires_grad_()
    a.requires_grad_()
    assert torch.autograd.gradgradcheck(lambda *t: sosfilt_scan(*t, chunk=8), (x, b, a))


# --------------------------------------------------------------------- 3. half precision audio


def _half_cases():
    h = torch.linspace(1.0, 0.0, 64) ** 4
    return {
        "parametric_eq": lambda v: F.parametric_eq(
            v, SR, [3.0, -2.0, 1.0, 0.5, -4.0], [100.0, 500.0, 1000.0, 3000.0, 6000.0], 0.8
        ),
        "sosfilt": lambda v: F.sosfilt(v, F.k_weighting_sos(SR)),
        "reverb": lambda v: F.reverb(v, SR, 0.3, 5.0, 0.5, 0.5, 7),
        "convolve": lambda v: F.convolve(v, h.to(v.dtype)),
        "compressor": lambda v: F.compressor(v, SR, -30.0, 4.0, 5.0, 50.0, 3.0),
        "normalize_loudness": lambda v: F.normalize_loudness(v, SR, -20.0),
    }


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(_half_cases()))
def test_half_precision_computes_in_float32(name: str, dtype: torch.dtype) -> None:
    fn = _half_cases()[name]
    x = _noise(2, 2, 8000).to(dtype)
    y = fn(x)
    assert y.dtype == dtype and y.shape == x.shape
    ref = fn(x.float()).to(dtype)  # the float32 result on the same (rounded) input
    eps = torch.finfo(dtype).eps
    err = (y.float() - ref.float()).abs().max().item()
    assert err <= 2 * eps * ref.float().abs().max().item()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_loudness(dtype: torch.dtype) -> None:
    x = _noise(2, 2, 8000).to(dtype)
    lufs = F.loudness(x, SR)
    assert lufs.dtype == dtype
    ref = F.loudness(x.float(), SR)
    assert torch.allclose(lufs.float(), ref, atol=0.2)  # LUFS rounded to the dtype


# ------------------------------------------------------------ 4. no NaN/Inf out of finite input


def test_rms_normalize_to_huge_levels_stays_finite() -> None:
    x = _noise(2, 2, 1000) * 1e21  # x² overflows float32
    ref = _noise(2, 2, 1000, seed=1) * 1e20
    out = F.rms_normalize_to(x, ref)
    assert bool(torch.isfinite(out).all())
    rms_out = np.sqrt((out.double().numpy() ** 2).mean(axis=(1, 2)))
    rms_ref = np.sqrt((ref.double().numpy() ** 2).mean(axis=(1, 2)))
    np.testing.assert_allclose(rms_out, rms_ref, rtol=1e-5)
    assert bool(torch.isfinite(F.rms(x)).all())


@pytest.mark.parametrize("param", ["gain_db", "freq_hz", "q"])
def test_rbj_biquad_nan_parameter_raises_naming_it(param: str) -> None:
    args = {"gain_db": 3.0, "freq_hz": 1000.0, "q": 0.7}
    args[param] = float("nan")
    with pytest.raises(ValueError, match=param):
        F.rbj_biquad("peak", args["gain_db"], args["freq_hz"], args["q"], SR)
    args[param] = torch.tensor([1.0, float("inf")], dtype=torch.float64)
    with pytest.raises(ValueError, match=param):
        F.rbj_biquad("peak", args["gain_db"], args["freq_hz"], args["q"], SR)


def test_compressor_makeup_is_bounded_like_gain() -> None:
    x = _noise(1, 2, 1000)
    with pytest.raises(ValueError, match="makeup_db"):
        F.compressor(x, SR, 0.0, 2.0, 5.0, 50.0, makeup_db=1000.0)
    # at the bound, below threshold: the closed form y = x · 10^(120/20)
    y = F.compressor(x.double(), SR, 0.0, 2.0, 5.0, 50.0, makeup_db=120.0)
    assert torch.allclose(y, x.double() * 1e6, rtol=1e-12)


def test_convolve_and_reverb_near_float32_max_scale_exactly() -> None:
    x = _noise(2, 2, 4000)
    x = 0.5 * x / x.abs().amax()  # peak exactly 0.5
    big = x * 2.0**126  # peak ~ 4.3e37; FFT sums overflow float32 without rescaling
    h = torch.linspace(1.0, -0.5, 100)
    # exact: power-of-two scaling commutes with every rounding step
    assert torch.equal(F.convolve(big, h), F.convolve(x, h) * 2.0**126)
    y = F.reverb(big, SR, 0.5, 3.0, 0.5, 0.4, 1)
    assert torch.equal(y, F.reverb(x, SR, 0.5, 3.0, 0.5, 0.4, 1) * 2.0**126)
    # the probe's case: peak 3e38 with a unit impulse is returned (up to FFT rounding)
    top = x / 0.5 * 3e38
    delta = torch.zeros(10)
    delta[0] = 1.0
    assert torch.allclose(F.convolve(top, delta), top, rtol=0, atol=1e-6 * 3e38)
    assert bool(torch.isfinite(F.reverb(top, SR, 0.5, 3.0, 0.5, 0.3, 1)).all())


def test_convolve_true_overflow_raises() -> None:
    x = torch.full((1, 1, 200), 3e38)
    with pytest.raises(ValueError, match="overflow"):
        F.convolve(x, torch.ones(50))


def test_loudness_near_float32_max() -> None:
    x = _noise(2, 2, 8000)
    x = x / x.abs().amax() * 0.5
    scale = 2.0**126
    lufs = F.loudness(x * scale, SR)
    assert torch.allclose(lufs, F.loudness(x, SR) + 20 * math.log10(scale), atol=1e-3)
    top = x / 0.5 * 3e38
    y = F.normalize_loudness(top, SR, -20.0)
    assert bool(torch.isfinite(y).all())
    assert torch.allclose(F.loudness(y, SR), torch.full((2,), -20.0), atol=0.01)


# ------------------------------------------------------------------ 5. plausible raw errors


def test_loudness_sample_rate_too_low_names_the_rate() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        F.loudness(torch.randn(1, 1, 100), 4)
    with pytest.raises(ValueError, match="sample_rate"):
        F.k_weighting_sos(3000)


@pytest.mark.parametrize("sos_shape", [(0, 6), (2, 0, 6)])
def test_sosfilt_zero_sections_is_identity_copy(sos_shape) -> None:
    x = _noise(2, 2, 100).requires_grad_()
    y = F.sosfilt(x, torch.zeros(*sos_shape))
    assert torch.equal(y, x) and y.data_ptr() != x.data_ptr()
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(g, torch.ones_like(x))


def test_parametric_eq_accepts_nested_lists() -> None:
    x = _noise(2, 2, 2000, dtype=torch.float64)
    gain = [[3.0, -2.0], [1.0, 6.0]]
    freq = [[200.0, 2000.0], [500.0, 4000.0]]
    q = [[0.7, 1.0], [2.0, 0.5]]
    y = F.parametric_eq(x, SR, gain, freq, q, band_types=("peak", "peak"))
    f64 = torch.float64
    expected = F.parametric_eq(
        x, SR, *(torch.tensor(v, dtype=f64) for v in (gain, freq, q)), ("peak", "peak")
    )
    assert torch.equal(y, expected)
    # independent reference: scipy with the cookbook sections of item 1
    b, a = F.rbj_biquad("peak", *(torch.tensor(v[1], dtype=f64) for v in (gain, freq, q)), SR)
    sos = torch.cat([b, a], dim=-1).numpy()
    np.testing.assert_allclose(y[1].numpy(), scipy.signal.sosfilt(sos, x[1].numpy()), atol=1e-12)
    with pytest.raises(ValueError, match="gain_db"):
        F.parametric_eq(x, SR, [[1.0, 2.0], [3.0]], freq, q, ("peak", "peak"))


# ------------------------------------------------------------------------ 6. channels-last


@pytest.mark.parametrize(
    "fn",
    [
        lambda v: F.gain(v, 3.0),
        lambda v: F.parametric_eq(v, SR, 3.0, 1000.0, 1.0, ("peak",)),
        lambda v: F.compressor(v, SR, -20.0, 4.0, 5.0, 50.0),
        lambda v: F.convolve(v, torch.ones(3)),
    ],
)
def test_channels_last_audio_is_refused(fn) -> None:
    x = torch.zeros(1, 500, 2)
    with pytest.raises(ValueError, match=r"\(batch, channels, samples\).*transpose"):
        fn(x)


def test_many_channels_warn_and_few_do_not() -> None:
    with pytest.warns(UserWarning, match="9 channels"):
        check_audio(torch.zeros(1, 9, 100))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_audio(torch.zeros(1, 8, 100))
        check_audio(torch.zeros(1, 2, 2))  # as many channels as samples is fine
