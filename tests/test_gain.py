"""Tests for fxdsp.functional.gain."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fxdsp.functional.gain import GAIN_DB_RANGE, _polarity_sign, gain

devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _audio(batch: int = 3, chans: int = 2, samples: int = 64, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, chans, samples, generator=g, dtype=dtype).to(device)


@pytest.mark.parametrize("device", devices)
def test_minus_6db_halves_the_signal(device: str) -> None:
    x = _audio(device=device)
    y = gain(x, -6.0206)
    np.testing.assert_allclose(y.cpu().numpy(), 0.5 * x.cpu().numpy(), rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_closed_form_per_item(dtype: torch.dtype) -> None:
    x = _audio(batch=4, dtype=dtype)
    g_db = torch.tensor([-20.0, 0.0, 3.5, 9.0], dtype=dtype)
    y = gain(x, g_db)
    expected = x.double().numpy() * (10.0 ** (g_db.double().numpy() / 20.0))[:, None, None]
    rtol = 1e-6 if dtype == torch.float32 else 1e-13
    np.testing.assert_allclose(y.double().numpy(), expected, rtol=rtol)
    assert y.dtype == dtype and y.shape == x.shape


def test_zero_db_is_identity() -> None:
    x = _audio(dtype=torch.float32)
    assert torch.equal(gain(x, 0.0), x)


def test_polarity_flip() -> None:
    x = _audio(batch=3)
    assert torch.equal(gain(x, 0.0, invert_polarity=True), -x)
    flags = torch.tensor([True, False, True])
    y = gain(x, 6.0, invert_polarity=flags)
    g = 10.0 ** (6.0 / 20.0)
    np.testing.assert_allclose(y[0].numpy(), -g * x[0].numpy(), rtol=1e-12)
    np.testing.assert_allclose(y[1].numpy(), g * x[1].numpy(), rtol=1e-12)
    np.testing.assert_allclose(y[2].numpy(), -g * x[2].numpy(), rtol=1e-12)


def test_batch_item_equals_item_alone() -> None:
    x = _audio(batch=4, dtype=torch.float32)
    g_db = torch.tensor([-3.0, 1.0, 7.5, -60.0])
    flags = torch.tensor([False, True, True, False])
    y = gain(x, g_db, invert_polarity=flags)
    for i in range(4):
        yi = gain(x[i : i + 1], g_db[i : i + 1], invert_polarity=flags[i : i + 1])
        assert torch.equal(y[i : i + 1], yi)


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device_kept(device: str, dtype: torch.dtype) -> None:
    x = _audio(batch=2, chans=1, samples=10, dtype=dtype, device=device)
    y = gain(
        x, torch.tensor([1.0, -1.0], device=device), torch.tensor([True, False], device=device)
    )
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device


def test_silence_stays_silent() -> None:
    x = torch.zeros(2, 2, 32)
    y = gain(x, GAIN_DB_RANGE[1], invert_polarity=True)
    assert torch.isfinite(y).all() and not y.any()


def test_gradcheck() -> None:
    x = _audio(batch=2, samples=16).requires_grad_()
    g_db = torch.tensor([-4.0, 2.5], dtype=torch.float64, requires_grad=True)
    flags = torch.tensor([True, False])
    assert torch.autograd.gradcheck(lambda a, b: gain(a, b, flags), (x, g_db))


@pytest.mark.parametrize("edge", GAIN_DB_RANGE)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_gradient_at_range_edges(edge: float, dtype: torch.dtype) -> None:
    x = _audio(batch=2, samples=16, dtype=dtype).requires_grad_()
    g_db = torch.full((2,), edge, dtype=dtype, requires_grad=True)
    gain(x, g_db).square().mean().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(g_db.grad).all()
    # d/dg (10^(g/20))^2·mean(x²) = ln(10)/10 · 10^(g/10) · mean(x²), per item
    expected = (
        math.log(10) / 10 * 10 ** (edge / 10) * x.detach().double().square().mean(dim=(1, 2)) / 2
    )
    np.testing.assert_allclose(g_db.grad.double().numpy(), expected.numpy(), rtol=1e-4)


@pytest.mark.parametrize(
    "make",
    [
        lambda: gain(torch.zeros(2, 16), 0.0),  # wrong ndim
        lambda: gain(torch.zeros(1, 2, 1), 0.0),  # 1-sample audio
        lambda: gain(torch.full((1, 2, 8), float("nan")), 0.0),  # NaN audio
        lambda: gain(torch.zeros(1, 2, 8, dtype=torch.int32), 0.0),  # integer audio
        lambda: gain(torch.zeros(2, 2, 8), torch.zeros(3)),  # mismatched batch
        lambda: gain(torch.zeros(2, 2, 8), 200.0),  # out of range
        lambda: gain(torch.zeros(2, 2, 8), float("nan")),  # non-finite gain
        lambda: gain(torch.zeros(2, 2, 8), 0.0, torch.tensor([1, 0])),  # non-bool flags
        lambda: gain(torch.zeros(2, 2, 8), 0.0, torch.tensor([True, False, True])),
        lambda: gain(torch.zeros(2, 2, 8), 0.0, 1),  # int instead of bool
    ],
)
def test_bad_input_raises(make) -> None:
    with pytest.raises(ValueError):
        make()


def test_polarity_flags_broadcast_and_bad_flags_name_the_problem() -> None:
    """Mutation survivors of gain.py: flag shapes, messages, and the range's lower edge."""
    x = torch.ones(3, 2, 4, dtype=torch.float64)
    for flags in (torch.tensor(True), torch.tensor([True])):  # 0-d and (1,): the whole batch
        assert torch.equal(gain(x, 0.0, flags), -x)
    with pytest.raises(ValueError, match=r"batch=3, got shape \(1, 1\)"):
        gain(x, 0.0, torch.tensor([[True]]))
    with pytest.raises(ValueError, match=r"batch=3, got shape \(2,\)"):
        gain(x, 0.0, torch.tensor([True, False]))
    with pytest.raises(ValueError, match=r"got dtype torch\.float32"):
        gain(x, 0.0, torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="invert_polarity is on meta but the audio is on cpu"):
        gain(x, 0.0, torch.ones(3, dtype=torch.bool, device="meta"))
    with pytest.raises(ValueError, match="a bool or a bool tensor, got int"):
        gain(x, 0.0, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^gain_db=-121 is below its minimum -120"):
        gain(x, -121.0)
    with pytest.raises(ValueError, match=r"^gain_db=121 is above"):
        gain(x, 121.0)
    # Half precision keeps its dtype with either kind of flag (the ±1 sign is in x's dtype).
    h = torch.ones(3, 2, 4, dtype=torch.float16)
    for flags in (True, torch.tensor([True, False, True])):
        y = gain(h, -6.0, flags)
        assert y.dtype == torch.float16
        assert float(y[0, 0, 0]) == pytest.approx(-(10 ** (-6.0 / 20)), rel=1e-3)


@pytest.mark.parametrize("invert", [False, True])
def test_polarity_sign_lives_on_the_audio_device_without_a_gpu(invert: bool) -> None:
    # The meta device stands in for an accelerator on a CPU-only machine: a sign made on the
    # default device instead of the audio's would land on the CPU.
    x = torch.empty(3, 2, 16, device="meta", dtype=torch.float64)
    sign = _polarity_sign(invert, x)
    assert sign.device == x.device and sign.dtype == x.dtype and sign.shape == (3,)
    assert torch.equal(
        _polarity_sign(invert, x.new_ones(3, 2, 16, device="cpu")),
        torch.full((3,), -1.0 if invert else 1.0, dtype=torch.float64),
    )
