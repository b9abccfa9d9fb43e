"""Exact biquad cascade and parametric EQ: scipy references, closed forms, gradients, errors."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import scipy.signal as ss
import torch
from subprocess_checks import assert_same_in_forked_child

from fxdsp.functional.filters import DEFAULT_BAND_TYPES, biquad, parametric_eq, rbj_biquad
from fxdsp.kernels.iir import sosfilt, sosfilt_scan

SR = 44100


def reference_ranges(batch: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """EQ parameters drawn from the reference FXmanipulator's ranges (REFERENCE.md)."""

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(batch, generator=gen, dtype=torch.float64)

    gain = torch.stack([u(-15, 15) for _ in range(5)], 1)
    freq = torch.stack([u(30, 200), u(200, 1000), u(1000, 3000), u(3000, 8000), u(5000, 10000)], 1)
    q = torch.stack(
        [torch.full((batch,), 0.707, dtype=torch.float64)]
        + [u(0.1, 2) for _ in range(3)]
        + [torch.full((batch,), 0.707, dtype=torch.float64)],
        1,
    )
    return gain, freq, q


def scipy_sos(gain, freq, q, sr=SR, kinds=DEFAULT_BAND_TYPES) -> np.ndarray:
    """Independent RBJ design in float64 numpy (written from the cookbook, not from fxdsp)."""
    rows = []
    for g, f, qq, kind in zip(gain, freq, q, kinds, strict=True):
        A = 10 ** (g / 40)
        w0 = 2 * math.pi * f / sr
        c, s = math.cos(w0), math.sin(w0)
        al = s / (2 * qq)
        if kind == "peak":
            b = [1 + al * A, -2 * c, 1 - al * A]
            a = [1 + al / A, -2 * c, 1 - al / A]
        elif kind == "low_shelf":
            r = 2 * math.sqrt(A) * al
            b = [
                A * ((A + 1) - (A - 1) * c + r),
                2 * A * ((A - 1) - (A + 1) * c),
                A * ((A + 1) - (A - 1) * c - r),
            ]
            a = [(A + 1) + (A - 1) * c + r, -2 * ((A - 1) + (A + 1) * c), (A + 1) + (A - 1) * c - r]
        elif kind == "high_shelf":
            r = 2 * math.sqrt(A) * al
            b = [
                A * ((A + 1) + (A - 1) * c + r),
                -2 * A * ((A - 1) + (A + 1) * c),
                A * ((A + 1) + (A - 1) * c - r),
            ]
            a = [(A + 1) - (A - 1) * c + r, 2 * ((A - 1) - (A + 1) * c), (A + 1) - (A - 1) * c - r]
        else:
            raise AssertionError(kind)
        rows.append([*(np.array(b) / a[0]), 1.0, *(np.array(a[1:]) / a[0])])
    return np.array(rows)


def error_db(y: np.ndarray, ref: np.ndarray) -> float:
    return 10 * math.log10(max(np.sum((y - ref) ** 2), 1e-300) / np.sum(ref**2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_parametric_eq_matches_scipy_sosfilt(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(1)
    batch = 8
    gain, freq, q = reference_ranges(batch, gen)
    # Include the corners of the reference ranges.
    gain[0] = torch.tensor([15.0, -15.0, 15.0, -15.0, 15.0], dtype=torch.float64)
    freq[0] = torch.tensor([30.0, 200.0, 1000.0, 3000.0, 10000.0], dtype=torch.float64)
    q[0, 1:4] = torch.tensor([0.1, 2.0, 0.1], dtype=torch.float64)
    x = torch.randn(batch, 2, SR, generator=gen, dtype=torch.float64)
    y = parametric_eq(x.to(dtype), SR, gain, freq, q)
    assert y.dtype == dtype and y.shape == x.shape
    for i in range(batch):
        sos = scipy_sos(gain[i].tolist(), freq[i].tolist(), q[i].tolist())
        ref = ss.sosfilt(sos, x[i].numpy(), axis=-1)
        assert error_db(y[i].double().numpy(), ref) <= -60.0
        if dtype == torch.float64:
            assert error_db(y[i].numpy(), ref) <= -200.0


def test_eq_frequency_response_closed_form() -> None:
    """A peak of +9 dB at 1 kHz has exactly +9 dB gain at 1 kHz (steady-state sine)."""
    t = torch.arange(SR, dtype=torch.float64) / SR
    x = torch.sin(2 * math.pi * 1000.0 * t).reshape(1, 1, -1)
    y = biquad(x, SR, "peak", 9.0, 1000.0, 1.0)
    gain = 20 * math.log10(
        float(y[..., SR // 2 :].abs().max()) / float(x[..., SR // 2 :].abs().max())
    )
    assert abs(gain - 9.0) < 0.01
    # A low shelf of −12 dB attenuates 20 Hz by about 12 dB and leaves 10 kHz alone.
    for f, expect in ((20.0, -12.0), (10000.0, 0.0)):
        xs = torch.sin(2 * math.pi * f * t).reshape(1, 1, -1)
        ys = biquad(xs, SR, "low_shelf", -12.0, 200.0, 0.707)
        got = 20 * math.log10(float(ys[..., SR // 2 :].abs().max()))
        assert abs(got - expect) < 0.3


@pytest.mark.parametrize(
    "kind", ["peak", "low_shelf", "high_shelf", "lowpass", "highpass", "bandpass", "notch"]
)
def test_rbj_biquad_response_matches_freqz(kind: str) -> None:
    b, a = rbj_biquad(kind, 6.0, 2000.0, 0.9, 48000)
    assert b.dtype == torch.float64 and float(a[0]) == 1.0
    _, h = ss.freqz(b.numpy(), a.numpy(), worN=[2000.0], fs=48000)
    mag_db = 20 * np.log10(np.abs(h[0]) + 1e-300)
    expected = {
        "peak": 6.0,
        "low_shelf": 3.0,
        "high_shelf": 3.0,
        "lowpass": 20 * math.log10(0.9),
        "highpass": 20 * math.log10(0.9),
        "bandpass": 0.0,
        "notch": -math.inf,
    }[kind]
    if math.isinf(expected):
        assert mag_db < -100
    else:
        assert abs(mag_db - expected) < 1e-6


def test_batched_equals_alone_and_float_params() -> None:
    gen = torch.Generator().manual_seed(2)
    gain, freq, q = reference_ranges(4, gen)
    x = torch.randn(4, 2, 3000, generator=gen)
    y = parametric_eq(x, SR, gain, freq, q)
    for i in range(4):
        yi = parametric_eq(x[i : i + 1], SR, gain[i : i + 1], freq[i : i + 1], q[i : i + 1])
        torch.testing.assert_close(y[i : i + 1], yi, rtol=0, atol=0)
    # A (bands,) list applies to every item.
    y_list = parametric_eq(x, SR, gain[0].tolist(), freq[0].tolist(), q[0].tolist())
    y_tile = parametric_eq(x, SR, gain[:1].expand(4, 5), freq[:1].expand(4, 5), q[:1].expand(4, 5))
    torch.testing.assert_close(y_list, y_tile, rtol=0, atol=0)


def test_scan_path_matches_kernel() -> None:
    """The device-agnostic chunked scan (used on CUDA) equals the CPU kernel and scipy."""
    gen = torch.Generator().manual_seed(3)
    gain, freq, q = reference_ranges(3, gen)
    x = torch.randn(3, 2, 5000, generator=gen, dtype=torch.float64)
    sos = torch.stack(
        [
            torch.tensor(scipy_sos(gain[i].tolist(), freq[i].tolist(), q[i].tolist()))
            for i in range(3)
        ]
    )
    b = sos[..., :3].repeat_interleave(2, 0)
    a = sos[..., 4:].repeat_interleave(2, 0)
    for chunk in (8, 64, 128):
        y = sosfilt_scan(x.reshape(6, -1), b, a, chunk=chunk).reshape(3, 2, -1)
        for i in range(3):
            ref = ss.sosfilt(sos[i].numpy(), x[i].numpy(), axis=-1)
            assert error_db(y[i].numpy(), ref) < -150
    # Its gradients (autograd through the scan) equal the kernel's analytic backward.
    xs = x[:, :, :200].clone().requires_grad_(True)
    ss_ = sos.clone().requires_grad_(True)
    g = torch.randn(3, 2, 200, generator=gen, dtype=torch.float64)
    (sosfilt(xs, ss_) * g).sum().backward()
    xs2 = x[:, :, :200].clone().requires_grad_(True)
    ss2 = sos.clone().requires_grad_(True)
    a0 = ss2[..., 3:4]
    b2 = (ss2[..., :3] / a0).repeat_interleave(2, 0)
    a2 = (ss2[..., 4:] / a0).repeat_interleave(2, 0)
    y2 = sosfilt_scan(xs2.reshape(6, -1), b2, a2, chunk=16)
    (y2.reshape(3, 2, -1) * g).sum().backward()
    torch.testing.assert_close(xs.grad, xs2.grad, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ss_.grad, ss2.grad, rtol=1e-7, atol=1e-7)


def test_gradcheck_eq() -> None:
    gen = torch.Generator().manual_seed(4)
    gain, freq, q = reference_ranges(2, gen)
    x = torch.randn(2, 2, 64, generator=gen, dtype=torch.float64, requires_grad=True)
    params = [p.clone().requires_grad_(True) for p in (gain, freq, q)]
    assert torch.autograd.gradcheck(
        lambda x, g, f, qq: parametric_eq(x, SR, g, f, qq), (x, *params)
    )


def test_gradcheck_sosfilt_kernel() -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 50, generator=gen, dtype=torch.float64, requires_grad=True)
    sos = torch.stack(
        [
            torch.tensor(
                np.concatenate(
                    [ss.butter(2, 0.1, output="sos"), ss.butter(2, 0.3, "high", output="sos")]
                )
            )
            for _ in range(2)
        ]
    )
    sos[1, :, :3] *= 0.5
    sos.requires_grad_(True)
    assert torch.autograd.gradcheck(sosfilt, (x, sos))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_gradients_at_range_edges(dtype: torch.dtype) -> None:
    x = torch.randn(4, 2, 2000, dtype=dtype)
    x[3] = 0.0  # silence
    gain = torch.tensor([[-15.0] * 5, [15.0] * 5, [0.0] * 5, [15.0] * 5], requires_grad=True)
    freq = torch.tensor(
        [[30.0, 200, 1000, 3000, 5000], [200.0, 1000, 3000, 8000, 10000]] * 2, requires_grad=True
    )
    q = torch.tensor(
        [[0.707, 0.1, 0.1, 0.1, 0.707], [0.707, 2.0, 2.0, 2.0, 0.707]] * 2, requires_grad=True
    )
    xr = x.clone().requires_grad_(True)
    y = parametric_eq(xr, SR, gain, freq, q)
    y.square().mean().backward()
    assert torch.isfinite(y).all()
    for t in (xr, gain, freq, q):
        assert torch.isfinite(t.grad).all()
    assert torch.equal(y[3], torch.zeros_like(y[3]))


def test_bad_input_raises() -> None:
    x = torch.randn(2, 2, 100)
    g, f, q = [0.0] * 5, [100.0, 500, 2000, 5000, 8000], [0.7] * 5
    with pytest.raises(ValueError, match="shape"):
        parametric_eq(torch.randn(2, 100), SR, g, f, q)
    with pytest.raises(ValueError, match="samples"):
        parametric_eq(torch.randn(2, 2, 1), SR, g, f, q)
    with pytest.raises(ValueError, match="sample_rate"):
        parametric_eq(x, 0, g, f, q)
    with pytest.raises(ValueError, match=r"^freq_hz must lie in \(0, 22050\) Hz"):
        parametric_eq(x, SR, g, [100.0, 500, 2000, 5000, 30000], q)
    with pytest.raises(ValueError, match=r"^q must be > 0, got \[0\.0, "):
        parametric_eq(x, SR, g, f, [0.7, 0, 0.7, 0.7, 0.7])
    for name, position in (("gain_db", 2), ("freq_hz", 3), ("q", 4)):
        args = [g, f, q]
        args[position - 2] = torch.ones(3, 5)
        with pytest.raises(ValueError, match=rf"^{name} must be \(batch, bands\)=\(2, 5\)"):
            parametric_eq(x, SR, *args)
    with pytest.raises(ValueError, match="band type"):
        parametric_eq(x, SR, g, f, q, band_types=("peak", "peak", "peak", "peak", "bogus"))
    bad = x.clone()
    bad[0, 0, 3] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        parametric_eq(bad, SR, g, f, q)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_eq_cuda_matches_cpu() -> None:
    gen = torch.Generator().manual_seed(6)
    gain, freq, q = reference_ranges(4, gen)
    x = torch.randn(4, 2, 44100, generator=gen)
    y_cpu = parametric_eq(x, SR, gain, freq, q)
    y_gpu = parametric_eq(x.cuda(), SR, gain.cuda(), freq.cuda(), q.cuda())
    assert y_gpu.device.type == "cuda"
    assert error_db(y_gpu.cpu().double().numpy(), y_cpu.double().numpy()) < -60


def test_functional_sosfilt_checks_its_input() -> None:
    from fxdsp.functional import sosfilt as checked

    sos = torch.tensor(ss.butter(4, 0.2, output="sos"))
    x = torch.randn(2, 2, 300, dtype=torch.float64)
    ref = ss.sosfilt(sos.numpy(), x.numpy(), axis=-1)
    np.testing.assert_allclose(checked(x, sos).numpy(), ref, atol=1e-12)
    with pytest.raises(ValueError, match="sos must be"):
        checked(x, sos[:, :5])
    bad = sos.clone()
    bad[0, 3] = 0.0
    with pytest.raises(ValueError, match="a0"):
        checked(x, bad)
    with pytest.raises(ValueError, match="batch"):
        checked(x, sos.unsqueeze(0).expand(3, -1, -1))


_FORK_RUN = """
import torch
from fxdsp.functional import loudness, parametric_eq

def run():
    gen = torch.Generator().manual_seed(0)
    x = (0.3 * torch.randn(3, 2, 20000, generator=gen, dtype=torch.float64)).requires_grad_()
    g = torch.tensor([[3.0, -2.0, 1.0, 4.0, -5.0]] * 3, dtype=torch.float64, requires_grad=True)
    y = parametric_eq(x, 44100, g, [80, 400, 1500, 5000, 9000], [0.7, 1.0, 2.0, 1.0, 0.7])
    y.square().sum().backward()
    return y.detach(), x.grad, g.grad, loudness(y.detach(), 44100)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_eq_and_loudness_work_in_forked_child_after_parent_used_them() -> None:
    """Fork-started DataLoader workers run the serial kernels (GNU OpenMP aborts otherwise)."""
    assert_same_in_forked_child(_FORK_RUN)


@pytest.mark.parametrize(
    "kind", ["peak", "low_shelf", "high_shelf", "lowpass", "highpass", "bandpass", "notch"]
)
@pytest.mark.parametrize(("gain_db", "freq_hz", "q"), [(6.0, 2000.0, 0.9), (-9.0, 150.0, 2.5)])
def test_rbj_biquad_response_at_every_frequency_is_the_bilinear_analog_prototype(
    kind: str, gain_db: float, freq_hz: float, q: float
) -> None:
    """The whole complex response, not only |H(f0)|: the cookbook's analog prototype H(s)
    (normalised to w0 = 1) at s = j·tan(πf/fs)/tan(πf0/fs), the bilinear map prewarped at f0."""
    sr = 48000
    b, a = rbj_biquad(kind, gain_db, freq_hz, q, sr)
    f = np.geomspace(10.0, 0.49 * sr, 64)
    _, h = ss.freqz(b.numpy(), a.numpy(), worN=f, fs=sr)
    s = 1j * np.tan(np.pi * f / sr) / np.tan(np.pi * freq_hz / sr)
    big_a = 10 ** (gain_db / 40)
    sa = np.sqrt(big_a) / q
    expected = {
        "lowpass": 1 / (s**2 + s / q + 1),
        "highpass": s**2 / (s**2 + s / q + 1),
        "bandpass": (s / q) / (s**2 + s / q + 1),
        "notch": (s**2 + 1) / (s**2 + s / q + 1),
        "peak": (s**2 + s * big_a / q + 1) / (s**2 + s / (big_a * q) + 1),
        "low_shelf": big_a * (s**2 + sa * s + big_a) / (big_a * s**2 + sa * s + 1),
        "high_shelf": big_a * (big_a * s**2 + sa * s + 1) / (s**2 + sa * s + big_a),
    }[kind]
    np.testing.assert_allclose(h, expected, rtol=1e-9, atol=1e-12)
    # And the time-domain filter is that response: biquad() against scipy's lfilter.
    x = torch.randn(1, 2, 4000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = biquad(x, sr, kind, gain_db, freq_hz, q)
    ref = ss.lfilter(b.numpy(), a.numpy(), x[0].numpy(), axis=-1)
    np.testing.assert_allclose(y[0].numpy(), ref, rtol=1e-9, atol=1e-12)


# ------------------------------------------------- the checks of the design and of sosfilt, exactly


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "bogus"}, r"^unknown biquad kind 'bogus'; expected one of \('peak', "),
        ({"freq_hz": 0.0}, r"^freq_hz must lie in \(0, 24000\) Hz for sample_rate=48000, got \[0"),
        ({"freq_hz": -1.0}, r"^freq_hz must lie in \(0, 24000\) Hz .*got \[-1\.0\]$"),
        ({"freq_hz": 24000.0}, r"^freq_hz must lie in \(0, 24000\) Hz .*got \[24000\.0\]$"),
        ({"q": 0.0}, r"^q must be > 0, got \[0\.0\]$"),
        ({"q": -1.0}, r"^q must be > 0, got \[-1\.0\]$"),
        ({"gain_db": float("nan")}, r"^gain_db must be finite, got \[nan\]$"),
        ({"freq_hz": float("inf")}, r"^freq_hz must be finite, got \[inf\]$"),
        ({"q": float("nan")}, r"^q must be finite, got \[nan\]$"),
        # at most eight values are shown
        ({"q": -torch.arange(1.0, 10.0)}, r"^q must be > 0, got \[(-\d\.0, ){7}-8\.0\]$"),
        (
            {"freq_hz": torch.full((9,), 1e6)},
            r"^freq_hz must lie in .*got \[(1000000\.0, ){7}1000000\.0\]$",
        ),
        (
            {"gain_db": torch.full((9,), math.inf)},
            r"^gain_db must be finite, got \[(inf, ){7}inf\]$",
        ),
    ],
)
def test_rbj_biquad_names_each_bad_parameter(kwargs: dict, message: str) -> None:
    args = {"kind": "peak", "gain_db": 0.0, "freq_hz": 1000.0, "q": 0.7, **kwargs}
    with pytest.raises(ValueError, match=message):
        rbj_biquad(args["kind"], args["gain_db"], args["freq_hz"], args["q"], 48000)


def test_rbj_biquad_frequency_range_is_open_and_reaches_its_ends() -> None:
    for f in (0.5, 23999.0):  # just inside (0, fs/2): accepted
        b, a = rbj_biquad("lowpass", 0.0, f, 0.7, 48000)
        # the cookbook's lowpass in plain float64 arithmetic
        w0 = 2 * math.pi * f / 48000
        alpha, c = math.sin(w0) / (2 * 0.7), math.cos(w0)
        ref_b = np.array([(1 - c) / 2, 1 - c, (1 - c) / 2]) / (1 + alpha)
        ref_a = np.array([1 + alpha, -2 * c, 1 - alpha]) / (1 + alpha)
        np.testing.assert_allclose(b.numpy(), ref_b, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(a.numpy(), ref_a, rtol=1e-9, atol=1e-15)


def test_rbj_biquad_designs_in_float64_on_the_parameters_device() -> None:
    # float32 tensors are designed in float64 (the documented return dtype)
    b, a = rbj_biquad("peak", torch.tensor([3.0]), torch.tensor([1000.0]), 0.7, 48000)
    assert b.dtype == a.dtype == torch.float64
    t32 = [torch.tensor([v]) for v in (3.0, 1000.0, 0.7)]  # all float32: still float64
    b, a = rbj_biquad("peak", *t32, 48000)
    assert b.dtype == a.dtype == torch.float64
    # a number beside a tensor is made on the tensor's device (meta stands in for a GPU)
    for position in range(3):
        params = [2.0, 1000.0, 0.7]
        params[position] = torch.tensor([params[position]], device="meta")
        b, a = rbj_biquad("peak", *params, 48000)
        assert b.device.type == a.device.type == "meta" and b.shape == (1, 3)


def test_biquad_takes_one_parameter_per_item() -> None:
    x = torch.randn(3, 2, 400, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    gain, freq, q = torch.tensor([6.0, -3.0, 0.0]), torch.tensor([200.0, 1000.0, 5000.0]), 0.9
    y = biquad(x, SR, "peak", gain, freq, torch.full((3,), q, dtype=torch.float64))
    for i in range(3):
        one = biquad(x[i : i + 1], SR, "peak", float(gain[i]), float(freq[i]), q)
        torch.testing.assert_close(y[i : i + 1], one, rtol=1e-12, atol=1e-12)


def test_band_types_must_name_a_band() -> None:
    with pytest.raises(ValueError, match=r"^band_types must name at least one band$"):
        parametric_eq(torch.randn(1, 2, 64), SR, [], [], [], band_types=())


@pytest.mark.parametrize(
    ("sos", "message"),
    [
        (
            [[1.0, 0, 0, 1, 0, 0]],
            r"^sos must be a \(batch, sections, 6\) or \(sections, 6\) "
            r"tensor, got list$",
        ),
        (torch.zeros(2, 5), r"tensor, got \(2, 5\)$"),
        (torch.zeros(6), r"tensor, got \(6,\)$"),
        (torch.zeros(1, 1, 1, 6), r"tensor, got \(1, 1, 1, 6\)$"),
        (torch.zeros(1, 6, device="meta"), r"^sos is on meta but the audio is on cpu$"),
        (torch.tensor([[1.0, 0, 0, 0, 0, 0]]), r"^sos must be finite with a0 != 0 in every sect"),
        (torch.tensor([[1.0, 0, 0, 1, math.nan, 0]]), r"^sos must be finite with a0 != 0"),
    ],
)
def test_functional_sosfilt_names_a_bad_cascade(sos, message: str) -> None:
    from fxdsp.functional.filters import sosfilt as checked

    with pytest.raises(ValueError, match=message):
        checked(torch.randn(1, 2, 16), sos)


def test_float32_audio_is_equalised_with_the_float64_parameters_given() -> None:
    """Parameters are never rounded to the audio's dtype: float32 audio gives the float64
    computation rounded once (a float32 rounding of the parameters moves the output by an ulp)."""
    x = torch.randn(2, 2, 44100, generator=torch.Generator().manual_seed(0))
    f64 = torch.float64
    g = torch.tensor([[3.3333333333, -2.123456789, 1.1, 0.7777777, -4.99999]] * 2, dtype=f64)
    f = torch.tensor([[101.234567, 523.456789, 1234.56789, 3456.789012, 7890.12345]] * 2, dtype=f64)
    q = torch.tensor(
        [[0.7071067811865476, 1.234567, 2.345678, 0.9876543, 0.70710678]] * 2, dtype=f64
    )
    want = parametric_eq(x.double(), SR, g, f, q).float()
    assert torch.equal(parametric_eq(x, SR, g, f, q), want)
    assert torch.equal(parametric_eq(x, SR, g[0].tolist(), f[0].tolist(), q[0].tolist()), want)
    assert not torch.equal(parametric_eq(x, SR, g.float(), f.float(), q.float()), want)


# -- the scan path, its chunking and its dtypes, on the CPU -------------------------------------
def _random_sos(sections: int, seed: int, a0: float = 1.0) -> np.ndarray:
    """Stable sections from random poles and zeros (radius < 0.98), ``a0`` not normalised."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(sections):
        r, th = rng.uniform(0.3, 0.98), rng.uniform(0.05, 3.0)
        a = [1.0, -2 * r * math.cos(th), r * r]
        b = rng.normal(size=3)
        rows.append([*(a0 * b), *(a0 * np.array(a))])
    return np.array(rows)


def test_default_chunk_is_the_documented_power_of_two() -> None:
    """M = 2^ceil(log2(T) / 2) (about sqrt(T)), at least 8 and at most 128."""
    from fxdsp.kernels.iir import _default_chunk

    want = {1: 8, 2: 8, 64: 8, 65: 16, 100: 16, 256: 16, 257: 32, 4096: 64, 4097: 128, 10**6: 128}
    assert {t: _default_chunk(t) for t in want} == want


@pytest.mark.parametrize("chunk", [1, 2, 3, 64])
def test_scan_equals_scipy_for_any_chunk(chunk: int) -> None:
    """Chunks of 1 and 2 samples exercise the end-state edge cases; 3 leaves a partial chunk."""
    sos = _random_sos(2, seed=chunk)
    x = np.random.default_rng(1).normal(size=(2, 301))
    y = sosfilt_scan(
        torch.from_numpy(x),
        torch.from_numpy(sos[None, :, :3]).expand(2, 2, 3),
        torch.from_numpy(sos[None, :, 4:]).expand(2, 2, 2),
        chunk=chunk,
    )
    assert error_db(y.numpy(), ss.sosfilt(sos, x, axis=-1)) < -150


def test_sosfilt_method_scan_on_the_cpu_float32_float16_and_unnormalised_sections() -> None:
    sos = _random_sos(3, seed=7, a0=3.0)  # a0 = 3: the sections are normalised inside
    x64 = np.random.default_rng(2).normal(size=(2, 2, 700))
    want = ss.sosfilt(sos / sos[:, 3:4], x64, axis=-1)
    for method in ("auto", "scan"):
        y = sosfilt(torch.from_numpy(x64), torch.from_numpy(sos), method=method)
        assert y.dtype == torch.float64 and error_db(y.numpy(), want) < -150, method
        # float32 audio and float32 sections: computed in float64, rounded once at the end.
        x32 = torch.from_numpy(x64).float()
        y32 = sosfilt(x32, torch.from_numpy(sos).float(), method=method)
        sos32 = torch.from_numpy(sos).float().double().numpy()
        ref32 = ss.sosfilt(sos32 / sos32[:, 3:4], x32.double().numpy())
        assert y32.dtype == torch.float32
        np.testing.assert_allclose(y32.numpy(), ref32.astype(np.float32), rtol=0, atol=1e-6)
        # float16: filtered in float32, cast back.
        y16 = sosfilt(x32.half(), torch.from_numpy(sos).float(), method=method)
        assert y16.dtype == torch.float16
        torch.testing.assert_close(y16, sosfilt(x32.half().float(), torch.from_numpy(sos).float(),
                                                method=method).half(), rtol=0, atol=0)  # fmt: skip
    with pytest.raises(ValueError) as info:
        sosfilt(torch.zeros(1, 1, 8), torch.from_numpy(sos), method="kernel")
    assert str(info.value) == "method must be 'auto' or 'scan', got 'kernel'"


def test_scan_keeps_float64_inside_for_float32_rows() -> None:
    """``sosfilt_scan`` on float32 rows and coefficients computes in float64: a resonant
    section's output is the float64 result rounded once (a float32 recursion drifts)."""
    r, th = 0.999, 0.01  # poles near z = 1: float32 state rounding accumulates
    sos = np.array([[1.0, 0.0, 0.0, 1.0, -2 * r * math.cos(th), r * r]], dtype=np.float32)
    x = np.random.default_rng(3).normal(size=(1, 4000)).astype(np.float32)
    y = sosfilt_scan(
        torch.from_numpy(x), torch.from_numpy(sos[None, :, :3]), torch.from_numpy(sos[None, :, 4:])
    )
    ref = ss.sosfilt(sos.astype(np.float64), x.astype(np.float64), axis=-1).astype(np.float32)
    assert y.dtype == torch.float32
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-6, atol=1e-5 * np.abs(ref).max())


def test_matrix_powers_against_matrix_power() -> None:
    from fxdsp.kernels.iir import _matrix_powers

    mat = torch.from_numpy(np.random.default_rng(4).normal(size=(4, 5, 3, 3)) / 2)
    got = _matrix_powers(mat, 7)
    assert got.shape == (4, 5, 7, 3, 3)
    for k in range(7):
        torch.testing.assert_close(got[..., k, :, :], torch.linalg.matrix_power(mat, k))


def test_second_order_gradient_message_points_at_the_scan() -> None:
    x = torch.randn(1, 1, 64, dtype=torch.float64, requires_grad=True)
    sos = torch.from_numpy(_random_sos(1, seed=5))
    with pytest.raises(RuntimeError) as info:
        torch.autograd.grad(sosfilt(x, sos).square().sum(), x, create_graph=True)
    assert str(info.value) == (
        "sosfilt's CPU kernel has no second-order gradient (backward with create_graph=True, "
        "double backward, gradgradcheck); its first-order gradient is exact. For second-order "
        "derivatives use fxdsp.kernels.iir.sosfilt_scan (plain torch ops, twice differentiable; "
        "the path CUDA tensors take)"
    )
    x2 = x.detach().clone().requires_grad_(True)  # the scan is twice differentiable
    (g2,) = torch.autograd.grad(
        sosfilt(x2, sos, method="scan").square().sum(), x2, create_graph=True
    )
    g2.sum().backward()
    assert x2.grad is not None and bool(torch.isfinite(x2.grad).all())
    # float16 audio is filtered in float32 by the same method: still twice differentiable
    x16 = x.detach().half().requires_grad_(True)
    (g16,) = torch.autograd.grad(
        sosfilt(x16, sos.float(), method="scan").float().square().sum(), x16, create_graph=True
    )
    g16.float().sum().backward()
    assert x16.grad is not None and x16.grad.dtype == torch.float16
