"""fxdsp.functional._scaling: the exact power-of-two rescaling and the overflow check."""

from __future__ import annotations

import math

import pytest
import torch

from fxdsp.functional._scaling import check_no_overflow, pow2_scale


def _expected_exponent(peak: float) -> int:
    """The smallest e >= 0 with peak < 2^(e + 1), by a plain loop."""
    e = 0
    while peak >= 2.0 ** (e + 1):
        e += 1
    return e


def test_quiet_cpu_audio_needs_no_scaling() -> None:
    # Peaks up to just below 2 on every item: nothing to do (None, no multiplications).
    x = torch.zeros(3, 2, 8, dtype=torch.float64)
    x[0, 0, 3] = 1.999999
    x[1, 1, 0] = -1.5
    assert pow2_scale(x) is None
    # A peak of exactly 2 is the first that is scaled (by 1/2).
    x[2, 0, 7] = -2.0
    scales = pow2_scale(x)
    assert scales is not None
    assert scales[0].flatten().tolist() == [1.0, 1.0, 0.5]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_each_item_gets_its_own_exact_power_of_two(dtype: torch.dtype) -> None:
    peaks = [0.5, 2.0, 3.0, 4.0, 1000.0, -7.9, 1e30]
    x = torch.zeros(len(peaks), 2, 16, dtype=dtype)
    for i, p in enumerate(peaks):
        x[i, i % 2, (5 * i) % 16] = p  # one sample per item carries the peak
        x[i, (i + 1) % 2, 0] = 0.25 * p  # the other channel quieter
    scales = pow2_scale(x)
    assert scales is not None
    down, up = scales
    assert down.shape == up.shape == (len(peaks), 1, 1)
    assert down.dtype == up.dtype == dtype
    for i, p in enumerate(peaks):
        e = _expected_exponent(abs(p))
        assert down[i].item() == math.ldexp(1.0, -e) and up[i].item() == math.ldexp(1.0, e)
        scaled_peak = (x[i] * down[i]).abs().max().item()
        assert scaled_peak < 2.0 and (scaled_peak >= 1.0 or e == 0)
    # The scaling is exact: back and forth gives the input bit for bit.
    assert torch.equal(x * down * up, x)


def test_scales_follow_the_audio_device_without_a_sync() -> None:
    # Off the CPU the scales are always returned (no host sync on the peak); the meta device
    # stands in for an accelerator here.
    x = torch.empty(4, 2, 32, device="meta")
    scales = pow2_scale(x)
    assert scales is not None
    assert all(s.device.type == "meta" and s.shape == (4, 1, 1) for s in scales)


def test_overflow_check() -> None:
    finite = torch.ones(2, 1, 4)
    bad16 = torch.full((2, 1, 4), float("inf"), dtype=torch.float16)
    bad32 = torch.full((2, 1, 4), float("inf"))
    for scaled in (False, True):
        check_no_overflow(finite, scaled, "f")  # nothing to report
        # A narrow dtype is always checked: the cast back from float32 can overflow.
        with pytest.raises(ValueError, match=r"f: the result overflows torch.float16"):
            check_no_overflow(bad16, scaled, "f")
    with pytest.raises(ValueError, match="scale the input down"):
        check_no_overflow(bad32, True, "f")
    # Unscaled float32: a peak below 2 cannot overflow the FFT, so no extra pass is made.
    check_no_overflow(bad32, False, "f")
    # Off the CPU nothing is checked (no host sync).
    check_no_overflow(torch.empty(2, 1, 4, device="meta", dtype=torch.float16), False, "f")
