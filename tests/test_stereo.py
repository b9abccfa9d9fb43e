"""Tests for fxdsp.functional.stereo (pan, mid/side, imager)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fxdsp.functional.stereo import (
    PAN_LAWS,
    left_right,
    mid_side,
    pan,
    pan_gains,
    stereo_imager,
)

devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
POSITIONS = np.linspace(-1.0, 1.0, 21)


def _audio(batch: int = 3, chans: int = 2, samples: int = 64, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, chans, samples, generator=g, dtype=dtype).to(device)


def _reference_gains(position: np.ndarray, law: str) -> tuple[np.ndarray, np.ndarray]:
    """Textbook pan laws in float64, written with cos/sin of θ = (pan + 1)·π/4."""
    theta = (position + 1.0) * math.pi / 4
    cp = (np.cos(theta), np.sin(theta))
    lin = ((1.0 - position) / 2, (1.0 + position) / 2)
    if law == "constant_power":
        return cp
    if law == "linear":
        return lin
    a = (20 * math.log10(2) - 4.5) / (20 * math.log10(math.sqrt(2)))
    return tuple(np.abs(c) ** a * np.abs(li) ** (1 - a) for c, li in zip(cp, lin, strict=True))


# ----------------------------------------------------------------------------------------- pan


def test_constant_power_mono_keeps_power_at_every_position() -> None:
    x = _audio(batch=len(POSITIONS), chans=1)
    y = pan(x, torch.tensor(POSITIONS), law="constant_power")
    power = y.square().sum(dim=1)
    np.testing.assert_allclose(power.numpy(), x[:, 0].square().numpy(), rtol=1e-12, atol=1e-15)


def test_linear_law_gains_sum_to_one() -> None:
    g_left, g_right = pan_gains(torch.tensor(POSITIONS), "linear")
    np.testing.assert_allclose((g_left + g_right).numpy(), 1.0, rtol=1e-15)


@pytest.mark.parametrize(
    ("law", "centre_db"),
    [("constant_power", -20 * math.log10(math.sqrt(2))), ("linear", -20 * math.log10(2))],
)
def test_centre_gain_closed_form(law: str, centre_db: float) -> None:
    g_left, g_right = pan_gains(torch.zeros(1, dtype=torch.float64), law)
    assert 20 * math.log10(float(g_left)) == pytest.approx(centre_db, abs=1e-12)
    assert float(g_left) == float(g_right)


def test_minus_4p5_db_law_centre_gain() -> None:
    g_left, g_right = pan_gains(torch.zeros(1, dtype=torch.float64), "-4.5dB")
    assert float(g_left) == pytest.approx(10 ** (-4.5 / 20), rel=1e-12)
    assert float(g_right) == pytest.approx(10 ** (-4.5 / 20), rel=1e-12)


def test_minus_4p5_db_law_is_near_geometric_mean() -> None:
    inner = torch.tensor(POSITIONS[1:-1])
    cp = pan_gains(inner, "constant_power")
    lin = pan_gains(inner, "linear")
    m45 = pan_gains(inner, "-4.5dB")
    for side in range(2):
        geo = torch.sqrt(cp[side] * lin[side])
        diff_db = 20 * torch.log10(m45[side] / geo)
        assert diff_db.abs().max() < 0.0205  # bound: 20·(a − 1/2)·log10(π/2) = 0.0202 dB


@pytest.mark.parametrize("law", PAN_LAWS)
def test_gains_match_textbook_reference(law: str) -> None:
    g_left, g_right = pan_gains(torch.tensor(POSITIONS), law)
    ref_left, ref_right = _reference_gains(POSITIONS, law)
    np.testing.assert_allclose(g_left.numpy(), ref_left, atol=1e-12)
    np.testing.assert_allclose(g_right.numpy(), ref_right, atol=1e-12)


@pytest.mark.parametrize("law", PAN_LAWS)
def test_mono_pan_matches_reference(law: str) -> None:
    x = _audio(batch=len(POSITIONS), chans=1)
    y = pan(x, torch.tensor(POSITIONS), law=law)
    ref_left, ref_right = _reference_gains(POSITIONS, law)
    np.testing.assert_allclose(y[:, 0].numpy(), x[:, 0].numpy() * ref_left[:, None], atol=1e-12)
    np.testing.assert_allclose(y[:, 1].numpy(), x[:, 0].numpy() * ref_right[:, None], atol=1e-12)


@pytest.mark.parametrize("law", PAN_LAWS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stereo_pan_zero_is_identity(law: str, dtype: torch.dtype) -> None:
    x = _audio(dtype=dtype)
    assert torch.equal(pan(x, 0.0, law=law), x)


@pytest.mark.parametrize("law", PAN_LAWS)
def test_stereo_balance_matches_reference(law: str) -> None:
    x = _audio(batch=len(POSITIONS))
    y = pan(x, torch.tensor(POSITIONS), law=law)
    ref_left, ref_right = _reference_gains(POSITIONS, law)
    centre_left, centre_right = _reference_gains(np.zeros(1), law)
    np.testing.assert_allclose(
        y[:, 0].numpy(), x[:, 0].numpy() * (ref_left / centre_left)[:, None], atol=1e-12
    )
    np.testing.assert_allclose(
        y[:, 1].numpy(), x[:, 1].numpy() * (ref_right / centre_right)[:, None], atol=1e-12
    )


@pytest.mark.parametrize("law", PAN_LAWS)
@pytest.mark.parametrize("chans", [1, 2])
def test_hard_pan_silences_the_other_side(law: str, chans: int) -> None:
    x = _audio(batch=2, chans=chans, dtype=torch.float32)
    y = pan(x, torch.tensor([-1.0, 1.0]), law=law)
    assert not y[0, 1].any()  # hard left: right silent
    assert not y[1, 0].any()  # hard right: left silent
    assert y[0, 0].abs().sum() > 0 and y[1, 1].abs().sum() > 0


def test_law_tensor_selects_per_item() -> None:
    n = 9
    x = _audio(batch=n, chans=1)
    positions = torch.linspace(-0.9, 0.8, n, dtype=torch.float64)
    laws = torch.tensor([0, 1, 2, 2, 1, 0, 1, 2, 0])
    y = pan(x, positions, law=laws)
    for i in range(n):
        yi = pan(x[i : i + 1], positions[i : i + 1], law=PAN_LAWS[int(laws[i])])
        assert torch.equal(y[i : i + 1], yi)


@pytest.mark.parametrize("chans", [1, 2])
def test_pan_batch_item_equals_item_alone(chans: int) -> None:
    x = _audio(batch=4, chans=chans, dtype=torch.float32)
    positions = torch.tensor([-0.7, 0.0, 0.3, 1.0])
    y = pan(x, positions, law="-4.5dB")
    for i in range(4):
        assert torch.equal(y[i : i + 1], pan(x[i : i + 1], positions[i : i + 1], law="-4.5dB"))


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chans", [1, 2])
def test_pan_shape_dtype_device(device: str, dtype: torch.dtype, chans: int) -> None:
    x = _audio(batch=3, chans=chans, samples=16, dtype=dtype, device=device)
    laws = torch.tensor([0, 1, 2], device=device)
    y = pan(x, torch.tensor([-0.5, 0.1, 0.9], device=device), law=laws)
    assert y.shape == (3, 2, 16) and y.dtype == dtype and y.device == x.device
    assert torch.isfinite(y).all()


def test_pan_silence() -> None:
    for chans in (1, 2):
        y = pan(torch.zeros(3, chans, 16), torch.tensor([-1.0, 0.0, 1.0]), law="-4.5dB")
        assert torch.isfinite(y).all() and not y.any()


@pytest.mark.parametrize("law", PAN_LAWS)
@pytest.mark.parametrize("chans", [1, 2])
def test_pan_gradcheck(law: str, chans: int) -> None:
    x = _audio(batch=3, chans=chans, samples=12).requires_grad_()
    position = torch.tensor([-0.6, 0.05, 0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, p: pan(a, p, law=law), (x, position))


@pytest.mark.parametrize("law", PAN_LAWS)
@pytest.mark.parametrize("chans", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pan_finite_gradient_at_edges(law: str, chans: int, dtype: torch.dtype) -> None:
    x = _audio(batch=3, chans=chans, samples=12, dtype=dtype).requires_grad_()
    position = torch.tensor([-1.0, 0.0, 1.0], dtype=dtype, requires_grad=True)
    pan(x, position, law=law).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(position.grad).all()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pan(torch.zeros(2, 16), 0.0), r"x must have shape \(batch, channels, samples\)"),
        (lambda: pan(torch.zeros(1, 1, 1), 0.0), r"x has 1 samples"),
        (lambda: pan(torch.zeros(1, 3, 16), 0.0), r"x must have 1 or 2 channel\(s\), got 3"),
        (lambda: pan(torch.full((1, 2, 8), float("nan")), 0.0), r"x contains non-finite"),
        (lambda: pan(torch.zeros(1, 2, 8), 1.5), r"pan=1.5 is above its maximum 1"),
        (lambda: pan(torch.zeros(1, 2, 8), -1.5), r"pan=-1.5 is below its minimum -1"),
        (lambda: pan(torch.zeros(2, 2, 8), torch.zeros(3)), r"pan must be .* batch=2, got shape"),
        (lambda: pan(torch.zeros(1, 2, 8), 0.0, law="sine"), r"unknown pan law 'sine'; expected"),
        (
            lambda: pan(torch.zeros(2, 2, 8), 0.0, law=torch.tensor([0, 3])),
            r"law indices must be in \[0, 2\], got \[0, 3\]",
        ),
        (
            lambda: pan(torch.zeros(2, 2, 8), 0.0, law=torch.tensor([0.0, 1.0])),
            r"law must be an integer tensor indexing PAN_LAWS, got dtype torch.float32",
        ),
        (
            lambda: pan(torch.zeros(2, 2, 8), 0.0, law=torch.tensor([0, 1, 2])),
            r"law must be a string or a \(batch,\) tensor with batch=2, got shape \(3,\)",
        ),
        (
            lambda: pan(torch.zeros(2, 2, 8), 0.0, law=2),
            r"law must be a string or an integer tensor, got int",
        ),
        (
            lambda: pan(torch.zeros(2, 2, 8), 0.0, law=torch.tensor([0, 1], device="meta")),
            r"law is on meta but the audio is on cpu",
        ),
        (lambda: pan_gains(torch.zeros(3), law="sine"), r"unknown pan law 'sine'"),
    ],
)
def test_pan_bad_input_names_the_problem(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_default_law_is_constant_power() -> None:
    position = torch.tensor([-1.0, -0.3, 0.0, 0.6], dtype=torch.float64)
    for got, want in zip(pan_gains(position), pan_gains(position, "constant_power"), strict=True):
        assert torch.equal(got, want)
    torch.testing.assert_close(pan_gains(position)[0], torch.sin((1 - position) * math.pi / 4))
    x = _audio(batch=4, chans=1, samples=32)
    assert torch.equal(pan(x, position), pan(x, position, law="constant_power"))


@pytest.mark.parametrize("chans", [1, 2])
def test_one_law_index_broadcasts_over_the_batch(chans: int) -> None:
    x = _audio(batch=3, chans=chans, samples=32)
    position = torch.tensor([-0.5, 0.2, 0.9], dtype=x.dtype)
    for index, name in enumerate(PAN_LAWS):
        want = pan(x, position, law=name)
        for law in (torch.tensor(index), torch.tensor([index]), torch.full((3,), index)):
            for dtype in (torch.int64, torch.int32, torch.uint8):
                assert torch.equal(pan(x, position, law=law.to(dtype)), want), (name, law)
    # Tensor laws pick per element: pan_gains with one index per position.
    mixed = torch.tensor([2, 0, 1])
    left, right = pan_gains(position, mixed)
    for i, name in enumerate(("-4.5dB", "constant_power", "linear")):
        gl, gr = pan_gains(position[i : i + 1], name)
        assert left[i] == gl[0] and right[i] == gr[0]


# ----------------------------------------------------------------------------------- mid/side


def test_mid_side_closed_form_and_round_trip() -> None:
    x = _audio()
    ms = mid_side(x)
    np.testing.assert_allclose(ms[:, 0].numpy(), (x[:, 0] + x[:, 1]).numpy() / 2, rtol=1e-15)
    np.testing.assert_allclose(ms[:, 1].numpy(), (x[:, 0] - x[:, 1]).numpy() / 2, rtol=1e-15)
    np.testing.assert_allclose(left_right(ms).numpy(), x.numpy(), rtol=1e-13, atol=1e-15)


def test_mid_side_round_trip_exact_on_dyadic_values() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randint(-1024, 1024, (2, 2, 50), generator=g).float() / 64  # sums are exact
    assert torch.equal(left_right(mid_side(x)), x)


def test_mid_side_bad_channels_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"x must have 2 channel\(s\), got 1"):
        mid_side(torch.zeros(1, 1, 8))
    with pytest.raises(ValueError, match=r"ms must have 2 channel\(s\), got 3"):
        left_right(torch.zeros(1, 3, 8))


# -------------------------------------------------------------------------------------- imager

WIDTHS = [0.0, 0.25, 0.5, 1.0, 1.3, 1.75, 2.0]


def _reference_imager(x: np.ndarray, width: float) -> np.ndarray:
    """Mid/side scaling then energy rescale, float64, written from the definition."""
    mid = (x[0] + x[1]) / 2
    side = (x[0] - x[1]) / 2
    if width <= 1:
        side = side * width
    else:
        mid = mid * (2 - width)
    y = np.stack([mid + side, mid - side])
    return y * math.sqrt(np.sum(x**2) / np.sum(y**2))


def test_imager_matches_reference() -> None:
    x = _audio(batch=len(WIDTHS))
    y = stereo_imager(x, torch.tensor(WIDTHS, dtype=torch.float64))
    for i, w in enumerate(WIDTHS):
        np.testing.assert_allclose(y[i].numpy(), _reference_imager(x[i].numpy(), w), atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_imager_width_one_is_identity(dtype: torch.dtype) -> None:
    x = _audio(dtype=dtype)
    assert torch.equal(stereo_imager(x, 1.0), x)


def test_imager_width_zero_is_mono_and_two_is_all_side() -> None:
    x = _audio(dtype=torch.float32)
    y0 = stereo_imager(x, 0.0)
    assert torch.equal(y0[:, 0], y0[:, 1])
    y2 = stereo_imager(x, 2.0)
    assert torch.equal(y2[:, 0], -y2[:, 1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_imager_keeps_energy_at_every_width(dtype: torch.dtype) -> None:
    x = _audio(batch=len(WIDTHS), dtype=dtype) * torch.linspace(0.01, 3.0, len(WIDTHS))[
        :, None, None
    ].to(dtype)
    y = stereo_imager(x, torch.tensor(WIDTHS, dtype=dtype))
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(
        y.double().square().sum(dim=(1, 2)).numpy(),
        x.double().square().sum(dim=(1, 2)).numpy(),
        rtol=rtol,
    )


def test_imager_silence_and_vanishing_output_stay_finite() -> None:
    silent = stereo_imager(torch.zeros(2, 2, 32), torch.tensor([0.0, 2.0]))
    assert torch.isfinite(silent).all() and not silent.any()
    side_only = _audio(batch=1)[:, :1].repeat(1, 2, 1) * torch.tensor([1.0, -1.0]).double()[:, None]
    y = stereo_imager(side_only, 0.0)  # pure side at width 0: nothing left to rescale
    assert torch.isfinite(y).all() and not y.any()
    mid_only = _audio(batch=1)[:, :1].repeat(1, 2, 1)
    y = stereo_imager(mid_only, 2.0)
    assert torch.isfinite(y).all() and not y.any()


def test_imager_batch_item_equals_item_alone() -> None:
    x = _audio(batch=4, dtype=torch.float32)
    widths = torch.tensor([0.0, 0.6, 1.4, 2.0])
    y = stereo_imager(x, widths)
    for i in range(4):
        assert torch.equal(y[i : i + 1], stereo_imager(x[i : i + 1], widths[i : i + 1]))


@pytest.mark.parametrize("device", devices)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_imager_shape_dtype_device(device: str, dtype: torch.dtype) -> None:
    x = _audio(batch=2, samples=16, dtype=dtype, device=device)
    y = stereo_imager(x, torch.tensor([0.2, 1.8], device=device))
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device


def test_imager_gradcheck() -> None:
    x = _audio(batch=3, samples=12).requires_grad_()
    width = torch.tensor([0.3, 0.8, 1.6], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(stereo_imager, (x, width))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_imager_finite_gradient_at_edges(dtype: torch.dtype) -> None:
    x = _audio(batch=3, samples=12, dtype=dtype).requires_grad_()
    width = torch.tensor([0.0, 1.0, 2.0], dtype=dtype, requires_grad=True)
    stereo_imager(x, width)[:, 0].sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(width.grad).all()
    silent = torch.zeros(3, 2, 12, dtype=dtype, requires_grad=True)
    width2 = torch.tensor([0.0, 1.0, 2.0], dtype=dtype, requires_grad=True)
    stereo_imager(silent, width2).sum().backward()
    assert torch.isfinite(silent.grad).all() and torch.isfinite(width2.grad).all()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: stereo_imager(torch.zeros(2, 16), 1.0), r"x must have shape"),
        (lambda: stereo_imager(torch.zeros(1, 3, 16), 1.0), r"x must have 2 channel\(s\), got 3"),
        (lambda: stereo_imager(torch.zeros(1, 1, 16), 1.0), r"x must have 2 channel\(s\), got 1"),
        (lambda: stereo_imager(torch.zeros(1, 2, 1), 1.0), r"x has 1 samples"),
        (lambda: stereo_imager(torch.full((1, 2, 8), float("nan")), 1.0), r"x contains non-fin"),
        (lambda: stereo_imager(torch.zeros(1, 2, 8), 2.5), r"width=2.5 is above its maximum 2"),
        (lambda: stereo_imager(torch.zeros(1, 2, 8), -0.1), r"width=-0.1 is below its minimum 0"),
        (
            lambda: stereo_imager(torch.zeros(2, 2, 8), torch.ones(3)),
            r"width must be .* batch=2, got shape \(3,\)",
        ),
    ],
)
def test_imager_bad_input_names_the_problem(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_imager_all_side_of_dual_mono_has_finite_gradient(dtype: torch.dtype) -> None:
    """Width 2 on L == R removes everything: output zero, gradient finite (float32 too)."""
    x = (0.5 * torch.ones(2, 2, 4000, dtype=dtype)).requires_grad_(True)
    w = torch.tensor([2.0, 1.5], dtype=dtype, requires_grad=True)
    y = stereo_imager(x, w)
    assert torch.equal(y[0], torch.zeros_like(y[0]))
    (y.double() ** 2).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(w.grad).all()


def test_law_gains_refuses_an_unknown_name_itself() -> None:
    # The public functions check the name first; the design function guards on its own, so
    # that no unknown name can fall through to the "-4.5dB" law.
    from fxdsp.functional.stereo import _law_gains

    with pytest.raises(ValueError, match=r"^unknown pan law 'sine'; expected one of \("):
        _law_gains(torch.zeros(3), "sine")
