"""What every training design other than fxdsp's must do (dasp, house): identity when off,
silence kept, seeded draws within their ranges, items independent, readable descriptions,
named errors, and triplets made with them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from designs import check_items_do_not_interact, noise, only, three_tracks

from fxdata.dasp_chain import apply_dasp_chain, sample_dasp_params
from fxdata.drawn_chain import DrawnChain
from fxdata.house_chain import apply_house_chain, sample_house_params
from fxdata.triplets import draw_triplets

SR = 44100

Sample = Callable[..., DrawnChain]
Apply = Callable[[torch.Tensor, DrawnChain], torch.Tensor]
DESIGNS: dict[str, tuple[Sample, Apply]] = {
    "dasp": (sample_dasp_params, apply_dasp_chain),  # type: ignore[dict-item]
    "house": (sample_house_params, apply_house_chain),  # type: ignore[dict-item]
}
pytestmark = pytest.mark.parametrize("design", list(DESIGNS))


def test_every_effect_off_is_the_identity_and_silence_stays_silent(design: str) -> None:
    sample, apply = DESIGNS[design]
    x = noise(3)
    torch.testing.assert_close(apply(x, only(sample, None, 3)), x, rtol=0, atol=0)
    full = sample(3, generator=torch.Generator().manual_seed(1), probability=1.0)
    assert all(bool(full.on[e].all()) for e in full.EFFECTS)
    y = apply(torch.zeros(3, 2, SR // 2), full)
    assert torch.isfinite(y).all() and float(y.abs().max()) == 0.0
    loud = apply(10.0 * x, full)  # far above every threshold: finite
    assert torch.isfinite(loud).all()


def test_draws_are_seeded_within_their_ranges_and_items_do_not_interact(design: str) -> None:
    sample, apply = DESIGNS[design]
    a = sample(4, generator=torch.Generator().manual_seed(7), sample_rate=SR)
    b = sample(4, generator=torch.Generator().manual_seed(7), sample_rate=SR)
    assert a.DESIGN == design and len(a) == 4
    assert all(torch.equal(a.values[k], b.values[k]) for k in a.RANGES)
    assert all(torch.equal(a.on[k], b.on[k]) for k in a.EFFECTS) and torch.equal(a.ir, b.ir)
    for name, (_effect, low, high, _log) in a.RANGES.items():
        assert float(a.values[name].min()) >= low and float(a.values[name].max()) <= high, name
    other = sample(4, generator=torch.Generator().manual_seed(8), sample_rate=SR)
    assert not torch.equal(a.ir, other.ir)
    check_items_do_not_interact(a, apply)
    tiled = a.repeat(2)
    assert type(tiled) is type(a) and len(tiled) == 8
    assert torch.equal(tiled.ir[5], a.ir[1]) and torch.equal(
        tiled.values["gain_db"][6:], a.values["gain_db"][2:]
    )


def test_describe_and_controls(design: str) -> None:
    sample, _apply = DESIGNS[design]
    a = sample(4, generator=torch.Generator().manual_seed(7), sample_rate=SR)
    controls = a.controls(0)
    assert list(controls) == a.chain(0)
    # active: the on flags as columns in processing order, as fxdsp.FxParams.active.
    assert a.active.shape == (4, len(a.EFFECTS)) and a.active.dtype == torch.bool
    for i in range(4):
        flags = a.active[i].tolist()
        assert [e for e, on in zip(a.EFFECTS, flags, strict=True) if on] == a.chain(i)
    assert all(set(v) == {k for k, r in a.RANGES.items() if r[0] == e}
               for e, v in controls.items())  # fmt: skip
    text = a.describe(0)  # readable text, as fxdsp.FxParams.describe
    assert text.startswith(f"item 0 ({design} design):")
    assert all(f"  {effect}:" in text for effect in a.chain(0))
    assert a.describe().count("item ") == 4
    assert "(every effect off)" in only(sample, None).describe(0)
    with pytest.raises(IndexError, match="out of range"):
        a.describe(4)
    with pytest.raises(ValueError, match="integer"):
        a.chain(0.5)  # type: ignore[arg-type]


def test_bad_arguments_are_named(design: str) -> None:
    sample, apply = DESIGNS[design]
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="n must be"):
        sample(0, generator=gen)
    with pytest.raises(ValueError, match="generator must be"):
        sample(2, generator=None)
    with pytest.raises(ValueError, match="sample_rate"):
        sample(2, generator=gen, sample_rate=100.0)
    with pytest.raises(ValueError, match="probability"):
        sample(2, generator=gen, probability=1.5)
    params = sample(2, generator=gen)
    with pytest.raises(ValueError, match=r"\(batch, 2, samples\)"):
        apply(torch.zeros(2, 1, 100), params)
    with pytest.raises(ValueError, match="3 items of audio for 2 drawn chains"):
        apply(torch.zeros(3, 2, 100), params)


def test_triplets_of_the_design(design: str, tmp_path: Path) -> None:
    sample, apply = DESIGNS[design]
    segments = three_tracks(tmp_path)
    gen = torch.Generator().manual_seed(0)
    trip = draw_triplets(segments, 5, generator=gen, design=design)
    assert type(trip.params) is type(sample(1, generator=torch.Generator()))
    assert len(trip.params) == 5
    torch.testing.assert_close(apply(trip.a1, trip.params), trip.a2, rtol=0, atol=0)
    torch.testing.assert_close(apply(trip.b1, trip.params), trip.b2, rtol=0, atol=0)
    assert all(a != b for a, b in zip(trip.track_a, trip.track_b, strict=True))
    again = draw_triplets(segments, 5, generator=torch.Generator().manual_seed(0), design=design)
    assert torch.equal(again.a2, trip.a2) and torch.equal(again.b2, trip.b2)
    with pytest.raises(ValueError, match="design must be one of"):
        draw_triplets(segments, 2, generator=gen, design="pedalboard")
    with pytest.raises(ValueError, match=f"probabilities are fxdsp's: the {design} design"):
        draw_triplets(segments, 2, generator=gen, design=design, probabilities={"eq": 1.0})
    assert trip.records()[0]["chain"] == trip.params.describe(0)
