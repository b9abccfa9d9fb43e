"""cloner.presets: JSON round trips, fxdsp rendering from a preset, the printout, the pedalboard
export against fxdsp, and errors."""

from __future__ import annotations

import json
import math
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import fxdsp
from cloner.parametric import neutral_normalized, render
from cloner.presets import ORDERS, Preset, StemPreset, apply_preset, stage_levels_db
from fxdsp import analysis
from fxdsp.registry import EFFECTS, STEMS

SR = 44100


def _noise(batch: int, seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 2, round(seconds * SR), generator=g)
    env = torch.linspace(0.3, 1.0, x.shape[-1])
    return 0.1 * torch.nn.functional.avg_pool1d(x, 5, 1, 2) * env


def _predicted(seed: int = 0) -> tuple[torch.Tensor, Preset]:
    u = torch.rand(4, 24, generator=torch.Generator().manual_seed(seed))
    return u, Preset.from_normalized(u, list(STEMS), SR, source="test")


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    _, preset = _predicted()
    back = Preset.from_json(preset.to_json())
    assert back == preset
    preset.save(tmp_path / "p.json")
    loaded = Preset.load(tmp_path / "p.json")
    assert loaded == preset
    for name in STEMS:  # every value bit for bit
        for key, value in preset.stems[name].values.items():
            assert loaded.stems[name].values[key] == value
    data = json.loads((tmp_path / "p.json").read_text())
    comp = data["stems"]["bass"]["chain"][1]
    assert comp["effect"] == "compressor"
    assert comp["params"]["attack_ms"]["unit"] == "ms"
    assert data["stems"]["bass"]["chain"][0]["bands"]["peak2"]["freq_hz"]["unit"] == "Hz"


def test_drawn_chain_round_trips_and_renders_bit_for_bit() -> None:
    """Any draw (effects off, swapped orders, pan laws, polarity flips) survives a preset."""
    params = fxdsp.sample_params(4, stems=list(STEMS), generator=torch.Generator().manual_seed(7))
    assert not bool(params.active.all()) and bool((params.order1[:, 0] == 1).any())
    preset = Preset.from_json(Preset.from_params(params, list(STEMS)).to_json())
    back = preset.to_params(list(STEMS))
    for name in ("stem", "active", "order1", "order2"):
        assert torch.equal(getattr(params, name), getattr(back, name)), name
    for key, value in params.values.items():
        assert torch.equal(value, back[key]), key
    x = _noise(4, 0.3)
    assert torch.equal(fxdsp.Manipulator(params)(x), fxdsp.Manipulator(back)(x))


def test_apply_preset_equals_the_controllers_render() -> None:
    u, preset = _predicted(1)
    x = _noise(4, 0.4, 1)
    y = render(u, x, SR, stems=list(STEMS))
    out = apply_preset(preset, {s: x[i] for i, s in enumerate(STEMS)}, SR)
    for i, s in enumerate(STEMS):
        assert float((out[s] - y[i]).abs().max()) < 1e-6
    # a neutral preset changes nothing
    neutral = Preset.from_normalized(neutral_normalized(batch=4), list(STEMS), SR)
    out = apply_preset(neutral, {"vocals": x[3]}, SR)
    assert float((out["vocals"] - x[3]).abs().max()) < 1e-6


def test_describe_reads_values_with_units() -> None:
    u = neutral_normalized(batch=1)
    u[0, 23] = 0.6  # gain: -6 + 0.6 * 15 = +3 dB
    u[0, 14] = math.log(4.0) / math.log(40.0)  # ratio 4:1
    text = Preset.from_normalized(u, ["vocals"], SR, source="unit test").describe()
    assert "vocals:" in text and "gain_db 3 dB" in text and "ratio 4:1" in text
    assert "eq: low_shelf" in text and " Hz " in text and "preset (unit test)" in text


def test_level_match_is_the_manipulators() -> None:
    """The measured RMS-match gains, applied as fixed gains after each processor, rebuild the
    Manipulator's output."""
    _, preset = _predicted(2)
    x = _noise(1, 0.4, 2)[0]
    levels = stage_levels_db(preset, "drums", x, SR, dtype=torch.float64)
    assert list(levels) == [e for e in preset.stems["drums"].chain if e != "gain"]
    params = preset.to_params(["drums"], SR, dtype=torch.float64)
    y = x.double()[None]
    for effect in preset.stems["drums"].chain:
        y = fxdsp.manipulator.apply_effect(effect, y, params)
        if effect != "gain":
            y = y * 10 ** (levels[effect] / 20)
    ref = fxdsp.Manipulator(params)(x.double()[None])
    assert float((y - ref).abs().max()) < 1e-9
    with_levels = preset.with_levels({"drums": x}, SR)  # float32, as fxdsp renders
    got = with_levels.stems["drums"].level_match_db
    assert got is not None and list(got) == list(levels)
    assert max(abs(got[k] - levels[k]) for k in levels) < 1e-4
    assert with_levels.stems["bass"].level_match_db is None
    assert Preset.from_json(with_levels.to_json()) == with_levels


def _bark_db(a: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))[None]
    return analysis.band_spectrum(t, SR, "bark", mode="channels").levels_db[0]


def test_pedalboard_export_renders_like_fxdsp() -> None:
    """EQ, pan, reverb and gain (with the level matches measured on this input): the same
    biquads, gains and impulse response in JUCE, in float32. Tolerances: float32 rounding over
    about a dozen cascaded stages and a 3-s FFT convolution stays near 1e-6 of full scale
    (measured 2e-5 of the peak); 1e-4 of the peak and 0.01 dB per Bark band leave ten times
    that, while any real mismatch (a wrong band type, Q convention, normalisation or delay)
    is 0.1 dB or more."""
    pytest.importorskip("pedalboard")
    _, preset = _predicted(3)
    x = _noise(1, 1.0, 3)[0]
    stem = replace(preset.stems["vocals"],
                   active={e: e in ("eq", "pan", "reverb", "gain") for e in EFFECTS})  # fmt: skip
    p = replace(preset, stems={"vocals": stem}).with_levels({"vocals": x}, SR)
    board = p.to_pedalboard("vocals")
    y_pb = board(x.numpy(), SR)
    y_fx = apply_preset(p, {"vocals": x}, SR)["vocals"].numpy()
    peak = float(np.abs(y_fx).max())
    assert y_pb.shape == y_fx.shape
    assert float(np.abs(y_pb - y_fx).max()) < 1e-4 * peak
    assert float((_bark_db(y_pb) - _bark_db(y_fx)).abs().max()) < 0.01


def test_pedalboard_export_warns_and_refuses() -> None:
    pytest.importorskip("pedalboard")
    _, preset = _predicted(4)
    with pytest.warns(UserWarning, match="level_match_db"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*imager")
        preset.to_pedalboard("bass")
    leveled = preset.with_levels({"bass": _noise(1, 0.2)[0]}, SR)
    with pytest.warns(UserWarning, match="imager"):
        leveled.to_pedalboard("bass")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no pedalboard equivalent"):
            leveled.to_pedalboard("bass", strict=True)
        with pytest.raises(ValueError, match="no stem 'piano'"):
            preset.to_pedalboard("piano")


def test_pedalboard_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _, preset = _predicted()
    monkeypatch.setitem(sys.modules, "pedalboard", None)
    with pytest.raises(ValueError, match=r"pip install 'mixfx\[bench\]'"):
        preset.to_pedalboard("drums")


def test_bad_presets_are_refused(tmp_path: Path) -> None:
    _, preset = _predicted()
    good = preset.to_dict()

    def broken(edit) -> dict:
        data = json.loads(json.dumps(good))
        edit(data)
        return data

    chain = lambda d: d["stems"]["drums"]["chain"]  # noqa: E731
    cases = [
        (lambda d: d.update(format="x"), "not a mixfx preset"),
        (lambda d: chain(d)[1]["params"]["attack_ms"].update(unit="s"), "in 'ms', not 's'"),
        (lambda d: chain(d)[1]["params"]["ratio"].update(value=0.5), "outside its range"),
        (lambda d: chain(d)[1]["params"].update(depth={"value": 1}), "unknown parameter"),
        (lambda d: chain(d)[5].update(effect="flanger"), "unknown effect"),
        (lambda d: chain(d).insert(0, chain(d).pop(4)), "order"),
        (lambda d: chain(d).pop(), "has no"),
        (lambda d: chain(d)[2].update(law="sideways"), "pan law"),
        (lambda d: chain(d)[0]["bands"].pop("peak1"), "bands"),
        (lambda d: chain(d)[3]["params"]["width"].update(value="wide"), "finite number"),
    ]
    for edit, match in cases:
        with pytest.raises(ValueError, match=match):
            Preset.from_dict(broken(edit))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json: malformed preset JSON"):
        Preset.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="cannot read preset"):
        Preset.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="no stem"):
        apply_preset(preset, {"piano": torch.zeros(2, 100)}, SR)
    assert len(ORDERS) == 4 and all(o[-2:] == ("reverb", "gain") for o in ORDERS)
    with pytest.raises(ValueError, match="active"):
        StemPreset(ORDERS[0], {"eq": True}, preset.stems["drums"].values)
