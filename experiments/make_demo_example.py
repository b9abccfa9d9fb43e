"""Build the demo's bundled example (``mixfx/demo_data/``) from the project's corpus.

``python -m experiments.make_demo_example --data data/corpus`` (after ``./run corpus``) writes:

* ``input/{drums,bass,other,vocals}.flac``: a few seconds of one held-out (test split) song's
  stems, FX-normalized with the shipped corpus statistics (what the transfer models were trained
  to take as input);
* ``reference/{...}.flac``: the same stretch of another held-out song, FX-normalized alike, then
  through the demo's style (``style.json``): bright, compressed, wide and roomy drums, a tight
  mono bass, scooped wide pads, a forward wet lead;
* ``style.json``: that style as a :class:`cloner.presets.Preset` (one fxdsp chain per stem,
  values with units), so the demo can render the *target* (the input through the same chain)
  and measure how close each method gets;
* ``example.json``: provenance (songs, their licences and SoundFonts, offsets, length, the
  command).

Both songs are freedoom tracks (BSD-3-Clause) rendered with MIT-licensed SoundFonts by
``mixfx corpus``; neither is in the training or validation split. The style is written by hand
here (not drawn, not chosen by the models' results).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import fxdsp
from fxdsp.registry import STEMS

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "mixfx" / "demo_data"
INPUT_SONG = "freedoom__d_e2m4"
REFERENCE_SONG = "freedoom__d_e3m3"
SECONDS = 6.0

#: The demo's style, per stem, in the controller chain's units (columns of
#: ``ParamSpace(cloner.parametric.controller_chain())`` by ``effect.name[band]``).
STYLE: dict[str, dict[str, float]] = {
    "drums": {
        "eq.gain_db[0]": 6.0, "eq.freq_hz[0]": 80.0,
        "eq.gain_db[3]": 4.0, "eq.freq_hz[3]": 5000.0,
        "eq.gain_db[4]": 5.0, "eq.freq_hz[4]": 8000.0,
        "compressor.threshold_db": -30.0, "compressor.ratio": 4.0,
        "compressor.attack_ms": 5.0, "compressor.release_ms": 100.0,
        "imager.width": 1.4, "reverb.rt60_s": 1.2, "reverb.mix": 0.3, "gain.gain_db": 2.0,
    },
    "bass": {
        "eq.gain_db[0]": 5.0, "eq.freq_hz[0]": 60.0,
        "eq.gain_db[1]": -4.0, "eq.freq_hz[1]": 400.0,
        "compressor.threshold_db": -30.0, "compressor.ratio": 6.0,
        "imager.width": 0.3, "reverb.mix": 0.05, "gain.gain_db": 1.0,
    },
    "other": {
        "eq.gain_db[1]": -5.0, "eq.freq_hz[1]": 300.0,
        "eq.gain_db[4]": 6.0, "eq.freq_hz[4]": 7000.0,
        "compressor.threshold_db": -25.0, "compressor.ratio": 2.0,
        "pan.pan": -0.4, "imager.width": 1.7, "reverb.rt60_s": 2.0, "reverb.mix": 0.4,
        "gain.gain_db": -2.0,
    },
    "vocals": {
        "eq.gain_db[2]": 5.0, "eq.freq_hz[2]": 2500.0,
        "eq.gain_db[4]": 4.0, "eq.freq_hz[4]": 9000.0,
        "compressor.threshold_db": -35.0, "compressor.ratio": 8.0,
        "pan.pan": 0.2, "imager.width": 0.8, "reverb.rt60_s": 1.5, "reverb.mix": 0.35,
        "gain.gain_db": 3.0,
    },
}  # fmt: skip


def style_preset(sample_rate: float = 44100.0):  # -> cloner.presets.Preset
    """:data:`STYLE` as a preset: every column not named keeps its neutral value."""
    from cloner.parametric import controller_chain, neutral_normalized
    from cloner.presets import Preset

    space = fxdsp.ParamSpace(controller_chain(sample_rate))
    labels = [
        f"{key}[{spec.band}]" if spec.band is not None else key for key, spec in space.columns
    ]
    u = neutral_normalized(space, len(STEMS))
    for i, stem in enumerate(STEMS):
        for label, value in STYLE[stem].items():
            j = labels.index(label)
            spec = space.columns[j][1]
            if not spec.minimum <= value <= spec.maximum:
                raise ValueError(f"{stem} {label} = {value} is outside [{spec.minimum}, "
                                 f"{spec.maximum}]")  # fmt: skip
            u[i, j] = spec.to_normalized(float(value))
    return Preset.from_normalized(u, list(STEMS), sample_rate, source="mixfx demo style")


def _segment(data: Path, song: str, seconds: float) -> tuple[np.ndarray, int, int]:
    """``(stems, 2, samples)`` FX-normalized, the offset, the rate: the song's first aligned
    loud segment (all four stems above -40 dBFS), as ``mixfx eval-encoder`` chooses them."""
    import fxdata
    from fxencoder.evaluation import aligned_offsets

    ds = fxdata.open_dataset(
        data, "test", STEMS, segment_seconds=seconds, sample_rate=44100, jitter=False,
        silence_db=-40.0, mode="stem", **fxdata.corpus_fxnorm(),
    )  # fmt: skip
    names = [t.name for t in ds.tracks]
    if song not in names:
        raise SystemExit(f"{song} is not in the test split of {data}")
    t = names.index(song)
    index = np.asarray(ds.index)
    offsets = aligned_offsets(index, len(STEMS)).get(t)
    if not offsets:
        raise SystemExit(f"{song} has no {seconds:g}-s stretch where all four stems are loud")
    offset = offsets[len(offsets) // 2]
    row_of = {(int(a), int(b), int(c)): i for i, (a, b, c) in enumerate(index)}
    audio = np.stack([ds[row_of[(t, s, offset)]]["audio"].numpy() for s in range(len(STEMS))])
    return audio, int(offset), int(ds.sample_rate)


def _write_stems(folder: Path, audio: np.ndarray, rate: int) -> None:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    peak = float(np.abs(audio).max())
    if peak >= 1.0:
        raise SystemExit(f"{folder}: peak {peak:.3f} would clip in 16-bit FLAC")
    for s, stem in enumerate(STEMS):
        sf.write(folder / f"{stem}.flac", audio[s].T, rate, subtype="PCM_16")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/corpus"), help="the corpus")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the demo's data folder")
    args = parser.parse_args(argv)

    from cloner.presets import apply_preset

    preset = style_preset()
    x, x_offset, rate = _segment(args.data, INPUT_SONG, SECONDS)
    r, r_offset, _ = _segment(args.data, REFERENCE_SONG, SECONDS)
    with torch.no_grad():
        ref = apply_preset(preset, dict(zip(STEMS, torch.from_numpy(r), strict=True)), rate)
    ref_audio = np.stack([ref[s].numpy() for s in STEMS])
    _write_stems(args.out / "input", x, rate)
    _write_stems(args.out / "reference", ref_audio, rate)
    preset.save(args.out / "style.json")
    songs = {}
    for song, offset in ((INPUT_SONG, x_offset), (REFERENCE_SONG, r_offset)):
        info = json.loads((args.data / "test" / song / "song.json").read_text())
        keys = ("source", "package", "licence", "soundfont", "soundfont_package",
                "soundfont_licence")  # fmt: skip
        songs[song] = {k: info[k] for k in keys}
        songs[song]["offset_samples"] = offset
    meta = {
        "format": "mixfx.demo-example/1",
        "sample_rate": rate,
        "seconds": SECONDS,
        "input": INPUT_SONG,
        "reference": REFERENCE_SONG,
        "songs": songs,
        "fxnorm": "fxdsp.FxNormStats.corpus_default()",
        "made_by": "python -m experiments.make_demo_example --data data/corpus",
    }
    (args.out / "example.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(preset.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
