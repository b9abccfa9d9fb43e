"""Shared input validation: finite checks, shapes, parameters."""

from __future__ import annotations

import pytest
import torch

from fxdsp._checks import as_band_param, as_param, check_audio, check_finite


def test_check_finite_exact_on_overflowing_sums() -> None:
    huge = torch.full((1, 2, 100), 3e38)  # finite values whose float32 sum overflows to inf
    check_finite(huge)
    check_audio(huge)
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.zeros(1, 2, 100)
        x[0, 1, 50] = bad
        with pytest.raises(ValueError, match="non-finite"):
            check_audio(x)
    mixed = torch.zeros(1, 2, 100)
    mixed[0, 0, 0], mixed[0, 0, 1] = float("inf"), -float("inf")  # sum is NaN
    with pytest.raises(ValueError, match=r"0 NaN, 2 Inf"):
        check_finite(mixed)


def test_check_audio_messages() -> None:
    with pytest.raises(ValueError, match=r"torch\.Tensor"):
        check_audio([[0.0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="floating-point"):
        check_audio(torch.zeros(1, 2, 10, dtype=torch.int16))
    with pytest.raises(ValueError, match="empty"):
        check_audio(torch.zeros(0, 2, 10))
    with pytest.raises(ValueError, match="channel"):
        check_audio(torch.zeros(1, 3, 10), channels=(1, 2))


def test_as_param_shapes_and_ranges() -> None:
    x = torch.zeros(3, 2, 10, dtype=torch.float64)
    assert as_param(2.0, x, "p").tolist() == [2.0, 2.0, 2.0]
    assert as_param(torch.tensor(1.0), x, "p").dtype == torch.float64
    with pytest.raises(ValueError, match=r"p must be a number or a \(batch,\) tensor"):
        as_param(torch.zeros(2), x, "p")
    with pytest.raises(ValueError, match="below its minimum"):
        as_param(-1.0, x, "p", low=0.0, high=1.0)
    with pytest.raises(ValueError, match="must be finite"):
        as_param(float("nan"), x, "p")
    assert as_band_param([1.0, 2.0], x, 2, "g").shape == (3, 2)
    with pytest.raises(ValueError, match="bands"):
        as_band_param([1.0, 2.0, 3.0], x, 2, "g")
