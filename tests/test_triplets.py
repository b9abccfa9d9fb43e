"""fxdata.triplets.draw_triplets: B from another track, same stem, one chain, seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import fxdsp
from fxdata.datasets import MultitrackDataset, SegmentDataset
from fxdata.pack import PackedSegments, pack_segments
from fxdata.triplets import Triplets, draw_triplets
from fxdsp.registry import STEMS

SR = 44100
SECONDS = 1.0
SEGMENT = 0.1  # short: the chain runs on the CPU of a shared test machine


def _audio(track: int, stem: int) -> np.ndarray:
    """(samples, 2): a sine whose frequency names the track and the stem."""
    t = np.arange(round(SECONDS * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * (100.0 * (stem + 1) + 17.0 * track) * t)
    return np.stack([x, 0.5 * x], axis=1)


def _write(root: Path, tracks: int, only_first_has_vocals: bool = False) -> Path:
    for t in range(tracks):
        folder = root / "train" / f"t{t}"
        folder.mkdir(parents=True)
        for s, stem in enumerate(STEMS):
            x = _audio(t, s)
            if only_first_has_vocals and stem == "vocals" and t > 0:
                x = np.zeros_like(x)
            sf.write(folder / f"{stem}.wav", x, SR, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> SegmentDataset:
    root = _write(tmp_path_factory.mktemp("data"), 3, only_first_has_vocals=True)
    tracks = MultitrackDataset(root, "all")
    cache = tmp_path_factory.mktemp("cache")
    return SegmentDataset(tracks, SEGMENT, cache_dir=cache, jitter=True, seed=1)


def _segment(ds: SegmentDataset, track: str, stem: str, offset: int) -> torch.Tensor:
    t = [tr.name for tr in ds.tracks].index(track)
    return ds.item(t, ds.stems.index(stem), offset)["audio"]


def test_triplet_properties(segments: SegmentDataset, device: str) -> None:
    gen = torch.Generator().manual_seed(0)
    trip = draw_triplets(segments, 12, generator=gen, device=device)
    assert isinstance(trip, Triplets) and len(trip) == 12
    L = segments.segment
    for x in (trip.a1, trip.a2, trip.b1, trip.b2):
        assert x.shape == (12, 2, L) and torch.isfinite(x).all()
        assert x.device.type == torch.device(device).type
    # B is from another track, of the same stem type; vocals exist in one track only, so a
    # triplet can never be made of them.
    assert all(a != b for a, b in zip(trip.track_a, trip.track_b, strict=True))
    assert set(trip.stems) <= {"drums", "bass", "other"} and len(set(trip.stems)) >= 2
    for i in range(12):
        a = _segment(segments, trip.track_a[i], trip.stems[i], trip.offset_a[i])
        b = _segment(segments, trip.track_b[i], trip.stems[i], trip.offset_b[i])
        assert torch.equal(trip.a1[i].cpu(), a) and torch.equal(trip.b1[i].cpu(), b)
        # The sine's frequency is the stem's and the track's: B's content differs from A's.
        assert not torch.allclose(trip.a1[i], trip.b1[i], atol=1e-3)
    # One chain, applied to two contents: both outputs recompute exactly.
    chain = fxdsp.Manipulator(trip.params)
    torch.testing.assert_close(chain(trip.a1), trip.a2, rtol=0, atol=0)
    torch.testing.assert_close(chain(trip.b1), trip.b2, rtol=0, atol=0)
    assert [r["chain"] for r in trip.records()] == [trip.params.describe(i) for i in range(12)]
    # The chain's stem-dependent parts (the reverb probability) follow the item's stem.
    assert [STEMS[int(s)] for s in trip.params.stem.cpu()] == trip.stems


def test_seeded_reproducibility(segments: SegmentDataset) -> None:
    def draw(seed: int) -> Triplets:
        return draw_triplets(segments, 8, generator=torch.Generator().manual_seed(seed))

    first, again, other = draw(5), draw(5), draw(6)
    for key in ("a1", "a2", "b1", "b2"):
        assert torch.equal(getattr(first, key), getattr(again, key))
    assert first.records() == again.records()
    assert first.records() != other.records()
    # A generator that advances gives a new batch (a training loop's consecutive steps).
    gen = torch.Generator().manual_seed(5)
    step1 = draw_triplets(segments, 8, generator=gen)
    step2 = draw_triplets(segments, 8, generator=gen)
    assert step1.records() == first.records() and step2.records() != step1.records()


def test_chain_config_without_level_match_reaches_the_chain(segments: SegmentDataset) -> None:
    cfg = fxdsp.ChainConfig().replace(level_match=False, probabilities={"eq": 1.0})
    trip = draw_triplets(segments, 6, generator=torch.Generator().manual_seed(3), config=cfg)
    free = fxdsp.Manipulator(trip.params, level_match=False)
    torch.testing.assert_close(free(trip.a1), trip.a2, rtol=0, atol=0)
    torch.testing.assert_close(free(trip.b1), trip.b2, rtol=0, atol=0)
    matched = fxdsp.Manipulator(trip.params)(trip.a1)
    assert float((matched - trip.a2).abs().max()) > 1e-4  # the EQs moved the level


def test_b_is_uniform_over_the_other_tracks(segments: SegmentDataset) -> None:
    off = dict.fromkeys(fxdsp.EFFECTS, 0.0)  # the selection is under test, not the chain
    gen = torch.Generator().manual_seed(2)
    trip = draw_triplets(segments, 300, generator=gen, probabilities=off)
    pairs: dict[tuple[str, str], int] = {}
    for a, b in zip(trip.track_a, trip.track_b, strict=True):
        pairs[(a, b)] = pairs.get((a, b), 0) + 1
    assert len(pairs) == 6  # every ordered pair of the 3 tracks
    assert min(pairs.values()) > 300 / 6 / 2  # none starved (expected 50 each)


def test_per_stem_selection_and_normalizer(segments: SegmentDataset) -> None:
    calls: list[list[str]] = []

    def halve(audio: torch.Tensor, stems: list[str]) -> torch.Tensor:
        calls.append(list(stems))
        return 0.5 * audio

    gen = torch.Generator().manual_seed(3)
    trip = draw_triplets(segments, 6, generator=gen, stems=["bass"], normalizer=halve)
    assert trip.stems == ["bass"] * 6 and calls == [["bass"] * 6, ["bass"] * 6]
    for i in range(6):
        raw = _segment(segments, trip.track_a[i], "bass", trip.offset_a[i])
        assert torch.equal(trip.a1[i], 0.5 * raw)
    torch.testing.assert_close(fxdsp.Manipulator(trip.params)(trip.b1), trip.b2, rtol=0, atol=0)
    with pytest.raises(ValueError, match="two different tracks"):
        draw_triplets(segments, 2, generator=gen, stems=["vocals"])  # one track has vocals
    with pytest.raises(ValueError, match="not in this dataset"):
        draw_triplets(segments, 2, generator=gen, stems=["piano"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be"),
        ({"generator": 0}, "CPU torch.Generator"),
    ],
)
def test_bad_arguments(segments: SegmentDataset, kwargs: dict, match: str) -> None:
    options = {"n": 2, "generator": torch.Generator().manual_seed(0), **kwargs}
    with pytest.raises(ValueError, match=match):
        draw_triplets(segments, options.pop("n"), **options)


def test_one_track_or_track_mode_is_refused(tmp_path: Path) -> None:
    root = _write(tmp_path / "one", 1)
    ds = SegmentDataset(MultitrackDataset(root, "all"), SEGMENT, cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="two different tracks"):
        draw_triplets(ds, 2, generator=torch.Generator())
    root = _write(tmp_path / "three", 3)
    track_mode = SegmentDataset(
        MultitrackDataset(root, "all"), SEGMENT, cache_dir=tmp_path / "c", mode="track"
    )
    with pytest.raises(ValueError, match="mode='stem'"):
        draw_triplets(track_mode, 2, generator=torch.Generator())


def test_works_on_a_segment_pack(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", 3)
    pack_segments(root, tmp_path / "pack", segment_seconds=SEGMENT, max_mib=1.0, progress=False)
    pack = PackedSegments(tmp_path / "pack")
    trip = draw_triplets(pack, 12, generator=torch.Generator().manual_seed(0))
    assert all(a != b for a, b in zip(trip.track_a, trip.track_b, strict=True))
    names = [t.name for t in pack.tracks]
    for i in range(12):
        rows = np.flatnonzero(
            (pack.index[:, 0] == names.index(trip.track_b[i]))
            & (pack.index[:, 1] == pack.stems.index(trip.stems[i]))
            & (pack.index[:, 2] == trip.offset_b[i])
        )
        assert len(rows) == 1 and torch.equal(pack[int(rows[0])]["audio"], trip.b1[i])
    torch.testing.assert_close(fxdsp.Manipulator(trip.params)(trip.a1), trip.a2, rtol=0, atol=0)


def _thinned_counts(effects: int, p: float, keep_min: float) -> np.ndarray:
    """P(k effects on), k = 0..effects, when each is on with probability p·q and
    q ~ U(keep_min, 1) per item: the binomial averaged over q (midpoint rule, 20 000 nodes)."""
    from math import comb

    q = keep_min + (1.0 - keep_min) * (np.arange(20000) + 0.5) / 20000
    r = p * q
    return np.array([
        np.mean(comb(effects, k) * r**k * (1 - r) ** (effects - k)) for k in range(effects + 1)
    ])  # fmt: skip


@pytest.mark.parametrize("design", ["fxdsp", "dasp", "house"])
def test_sparser_chains(segments: SegmentDataset, design: str) -> None:
    n, keep_min = 240, 0.0
    fx = design == "fxdsp"
    everything = dict.fromkeys(fxdsp.EFFECTS, 1.0) if fx else None
    trip = draw_triplets(segments, n, generator=torch.Generator().manual_seed(4), design=design,
                         probabilities=everything, keep_min=keep_min)  # fmt: skip
    counts = trip.params.active.sum(dim=1).numpy()
    # fxdsp with every effect at probability 1: q·6 effects, the count uniform over 0..6.
    effects, p = (len(fxdsp.EFFECTS), 1.0) if fx else (len(trip.params.EFFECTS), 0.75)
    expected = _thinned_counts(effects, p, keep_min)
    if fx:
        np.testing.assert_allclose(expected, 1 / 7, atol=1e-6)
    sigma = np.sqrt(expected * (1 - expected) / n)
    observed = np.bincount(counts, minlength=effects + 1) / n
    assert np.all(np.abs(observed - expected) < 4.5 * sigma + 1e-9), (observed, expected)
    # The unthinned draw of the same design almost never has a single effect on.
    full = draw_triplets(segments, n, generator=torch.Generator().manual_seed(4), design=design,
                         probabilities=everything)  # fmt: skip
    assert (full.params.active.sum(dim=1).numpy() <= 1).mean() < 0.05 < (counts <= 1).mean()
    # A and B still share the (thinned) chain.
    if fx:
        chain = fxdsp.Manipulator(trip.params)
        torch.testing.assert_close(chain(trip.a1), trip.a2, rtol=0, atol=0)
        torch.testing.assert_close(chain(trip.b1), trip.b2, rtol=0, atol=0)
    else:
        from fxdata.triplets import _design_functions

        apply = _design_functions(design)[1]
        torch.testing.assert_close(apply(trip.a1, trip.params), trip.a2, rtol=0, atol=0)
        torch.testing.assert_close(apply(trip.b1, trip.params), trip.b2, rtol=0, atol=0)


def test_drawing_records_no_gradients(segments: SegmentDataset) -> None:
    seen: list[bool] = []

    def watch(audio: torch.Tensor, stems: list[str]) -> torch.Tensor:
        seen.append(torch.is_grad_enabled())
        return audio

    with torch.enable_grad():
        trip = draw_triplets(segments, 2, generator=torch.Generator().manual_seed(0),
                             normalizer=watch)  # fmt: skip
    assert seen == [False, False] and not trip.a2.requires_grad


def test_keep_min_one_draws_nothing_more(segments: SegmentDataset) -> None:
    plain = draw_triplets(segments, 6, generator=torch.Generator().manual_seed(9))
    kept = draw_triplets(segments, 6, generator=torch.Generator().manual_seed(9), keep_min=1.0)
    assert torch.equal(plain.a2, kept.a2) and plain.records() == kept.records()
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"keep_min must be a finite number in \[0, 1\]"):
            draw_triplets(segments, 2, generator=torch.Generator(), keep_min=bad)
    for bad in (True, "0.5"):
        with pytest.raises(ValueError, match="keep_min must be a number, got"):
            draw_triplets(segments, 2, generator=torch.Generator(), keep_min=bad)
