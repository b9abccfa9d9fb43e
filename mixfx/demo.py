"""The mixfx demo: a bundled multitrack converted to the mixing style of a bundled reference.

The example ships in ``mixfx/demo_data/`` (made by ``experiments/make_demo_example.py`` from the
project's corpus: two held-out songs, never trained on):

* ``input/``: six seconds of one song's four stems (drums, bass, other, vocals), FX-normalized;
* ``reference/``: the same stretch of another song, through the demo's style;
* ``style.json``: that style, one fxdsp chain per stem (a :class:`cloner.presets.Preset`):
  bright, compressed, wide and roomy drums, a tight near-mono bass, scooped wide pads panned
  left, a forward wet lead.

Because the style is known, the demo also renders the **target**: the input through the very
chains that made the reference, what a perfect transfer would output. Each method converts the
input stems with the reference's matching stems and is measured against that target:

* ``params``: the shipped parameter controller predicts one fxdsp chain per stem (and writes
  it as an editable preset);
* ``cloner``: the shipped style-transfer network (a TCN conditioned on the encoder).

Figures, per method and for the input unchanged: the multi-scale spectral loss of the mix to the
target's (left/right and mid/side; lower is closer), and the encoder distance (1 − cosine of the
shipped encoder's embeddings, ``fxencoder.load("default")``, mean over the four stems) of the
output to the target and to the reference. Files, each written atomically into the output
folder (``out/demo/`` by default):

* ``input.wav``, ``reference.wav``, ``target.wav``: the three mixes;
* ``output.wav``: the default method's mix (``mixfx transfer``'s, :data:`DEFAULT_METHOD
  <mixfx.commands.transfer.DEFAULT_METHOD>`), and
  ``output_<method>.wav`` for every method run;
* ``preset.json``: the parametric method's chains, values with units (load it back with
  ``mixfx transfer ... --method params --preset preset.json``);
* ``comparison.png``: the mixes' spectra, loudness over time and stereo width per stem, and
  the figures above as bars;
* ``summary.json``: every figure, the timings and the example's provenance.

Run it with ``mixfx demo`` or ``./run demo``; from Python, :func:`run_demo`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import fxencoder
from fxdsp import analysis as A
from fxdsp.io import atomic_write
from fxdsp.registry import STEMS

__all__ = [
    "DATA_DIR",
    "METHODS",
    "Example",
    "format_report",
    "load_example",
    "run_demo",
]

#: The bundled example.
DATA_DIR = Path(__file__).resolve().parent / "demo_data"
#: The transfer methods the demo can run, in the order it runs them.
METHODS = ("params", "cloner")
_FILES = ("input", "reference", "target")


@dataclass(frozen=True)
class Example:
    """The demo's material.

    Attributes:
        input: ``{stem: (2, samples)}`` float32, the stems to convert.
        reference: ``{stem: (2, samples)}``, another song's stems in the style.
        style: the :class:`cloner.presets.Preset` that made the reference.
        sample_rate: of all the audio, in Hz.
        info: ``example.json`` (provenance).
    """

    input: dict[str, Tensor]
    reference: dict[str, Tensor]
    style: Any
    sample_rate: int
    info: dict[str, Any]


def _read_stems(folder: Path) -> tuple[dict[str, Tensor], int]:
    import soundfile as sf

    stems, rates = {}, set()
    for stem in STEMS:
        path = folder / f"{stem}.flac"
        if not path.is_file():
            raise ValueError(f"the demo example is incomplete: {path} is missing")
        try:
            data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except RuntimeError as err:
            raise ValueError(f"cannot read {path}: {err}") from None
        if data.shape[1] != 2 or len(data) == 0:
            raise ValueError(f"{path} must be non-empty stereo, got {data.shape}")
        stems[stem] = torch.from_numpy(np.ascontiguousarray(data.T))
        rates.add(int(rate))
    if len(rates) != 1:
        raise ValueError(f"the stems in {folder} have different sample rates {sorted(rates)}")
    return stems, rates.pop()


def load_example(folder: str | os.PathLike[str] = DATA_DIR) -> Example:
    """Read the bundled example (or one laid out alike in ``folder``).

    Raises:
        ValueError: a missing or unreadable file, stems of different rates or lengths.
    """
    from cloner.presets import Preset

    root = Path(folder)
    x, rate = _read_stems(root / "input")
    r, ref_rate = _read_stems(root / "reference")
    if ref_rate != rate:
        raise ValueError(f"input at {rate} Hz, reference at {ref_rate} Hz: they must match")
    lengths = {v.shape[-1] for v in (*x.values(), *r.values())}
    if len(lengths) != 1:
        raise ValueError(f"the example's stems differ in length: {sorted(lengths)} samples")
    for name in ("style.json", "example.json"):
        if not (root / name).is_file():
            raise ValueError(f"the demo example is incomplete: {root / name} is missing")
    style = Preset.load(root / "style.json")
    info = json.loads((root / "example.json").read_text(encoding="utf-8"))
    return Example(x, r, style, rate, info)


# ------------------------------------------------------------------------------------------------
# The methods
# ------------------------------------------------------------------------------------------------
@dataclass
class _Result:
    stems: dict[str, Tensor]
    seconds: float
    preset: Any = None


def _run_params(example: Example, controller: str, device: torch.device) -> _Result:
    from cloner import parametric as pm
    from cloner.presets import Preset

    model, info = pm.load_controller_with_info(controller, device=device)
    encoder = pm.load_encoder_for_controller(info, device=device)
    start = time.perf_counter()
    out = pm.transfer_params(
        model, encoder, example.input, example.sample_rate, example.reference,
        example.sample_rate,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    preset = Preset.from_transfer(out, f"mixfx demo: controller {controller}")
    return _Result(out.stems, seconds, preset)


def _run_cloner(example: Example, cloner: str, device: torch.device) -> _Result:
    from cloner import api
    from cloner.inference import transfer_stems

    model, info = api.load_with_info(cloner, device=device)
    encoder = api.load_encoder_for(info, device=device)
    start = time.perf_counter()
    out = transfer_stems(
        model, encoder, example.input, example.sample_rate, example.reference,
        example.sample_rate,
    )  # fmt: skip
    return _Result(out.stems, time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------
# Measures
# ------------------------------------------------------------------------------------------------
def _mix(stems: Mapping[str, Tensor]) -> Tensor:
    return torch.stack([stems[s].cpu().float() for s in STEMS]).sum(0)


def _embed_stems(stems: Mapping[str, Tensor], rate: int, encoder: Any) -> Tensor:
    """``(stems, dim)`` embeddings of the four stems, in :data:`STEMS` order."""
    device = next(encoder.parameters()).device
    return encoder.embed(torch.stack([stems[s].float() for s in STEMS]).to(device), rate).cpu()


def _figures(
    stems: Mapping[str, Tensor], target: Mapping[str, Tensor], rate: int, encoder: Any,
    anchors: Mapping[str, Tensor],
) -> dict[str, float]:  # fmt: skip
    """MSS of the mix to the target's, encoder distances of the stems to the ``anchors``
    (``"target"``, ``"reference"``: their stems' embeddings), mean over stems."""
    from cloner.evaluation import cosine_distance
    from cloner.loss import mss_loss

    y, t = _mix(stems)[None], _mix(target)[None]
    out = {f"mss_{ch}": float(mss_loss(y, t, channels=ch)) for ch in ("lr", "ms")}
    emb = _embed_stems(stems, rate, encoder)
    for name, anchor in anchors.items():
        out[f"emb_{name}"] = float(cosine_distance(emb, anchor).mean())
    return out


def _relative(figures: Mapping[str, float], base: Mapping[str, float]) -> dict[str, float]:
    """Each figure's change against input unchanged (−0.2: 20 % lower)."""
    return {k: v / base[k] - 1.0 for k, v in figures.items() if base[k] > 0}


def _describe_mix(x: Tensor, rate: int) -> dict[str, float]:
    from mixfx.effects_demo import measure

    m = measure(x[None], rate)
    return {k: m[k] for k in ("integrated_lufs", "crest_factor_db", "stereo_width",
                              "spectral_centroid_hz")}  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------------
_COLOURS = {"input": "0.55", "reference": "tab:orange", "target": "black",
            "params": "tab:blue", "cloner": "tab:green"}  # fmt: skip


def _plot(path: Path, mixes: Mapping[str, Tensor], stems: Mapping[str, Mapping[str, Tensor]],
          summary: Mapping[str, Any], rate: int) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixfx.effects_demo import band_levels, momentary_loudness

    def line(name: str) -> dict[str, Any]:  # the target bold, the reference dashed
        return {"label": name, "color": _COLOURS.get(name.removeprefix("output_")),
                "lw": 2.2 if name == "target" else 1.3,
                "ls": "--" if name == "reference" else "-"}  # fmt: skip

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    ax = axes[0, 0]
    for name, x in mixes.items():
        ax.semilogx(*band_levels(x[None], rate), **line(name))
    ax.set(xlabel="frequency (Hz)", ylabel="level (dB, 1/6 octave)", title="Average spectrum")
    ax.set_xlim(30, rate / 2)
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)

    ax = axes[0, 1]
    for name, x in mixes.items():
        ax.plot(*momentary_loudness(x[None], rate), **line(name))
    ax.set(xlabel="time (s)", ylabel="LUFS", title="Momentary loudness (400 ms)")
    ax.grid(True, alpha=0.3)

    ax = axes[1, 0]
    names = list(stems)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        vals = [float(A.stereo_width(stems[name][s][None].double())[0]) for s in STEMS]
        vals.append(float(A.stereo_width(mixes[name][None].double())[0]))
        ax.bar(np.arange(len(STEMS) + 1) + (i - (len(names) - 1) / 2) * width, vals, width,
               label=name, color=_COLOURS.get(name.removeprefix("output_")))  # fmt: skip
    ax.set_xticks(np.arange(len(STEMS) + 1), [*STEMS, "mix"])
    ax.set(ylabel="side energy / total", title="Stereo width")
    ax.legend(fontsize="small")

    ax = axes[1, 1]
    rows = summary["figures"]
    labels = list(rows)
    keys = (("mss_lr", "MSS L/R to target"), ("mss_ms", "MSS M/S to target"),
            ("emb_target", "ΔΦ to target"), ("emb_reference", "ΔΦ to reference"))  # fmt: skip
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        base = rows["input unchanged"]
        vals = [rows[label][k] / base[k] if base[k] > 0 else np.nan for k, _ in keys]
        ax.bar(np.arange(len(keys)) + (i - (len(labels) - 1) / 2) * width, vals, width,
               label=label, color=_COLOURS.get(label.split()[0], "0.55"))  # fmt: skip
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(keys)), [k[1] for k in keys], fontsize="small")
    ax.set(ylabel="relative to input unchanged (lower is better)", title="How close")
    ax.legend(fontsize="small")
    fig.suptitle("mixfx demo: the input converted to the reference's mixing style")
    fig.tight_layout()

    def write(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=90)

    try:
        atomic_write(path, write)
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------
def run_demo(
    out_dir: str | os.PathLike[str],
    *,
    methods: Sequence[str] = METHODS,
    controller: str = "default",
    cloner: str = "default",
    data: str | os.PathLike[str] = DATA_DIR,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """Convert the example with each method, measure, and write the files (see the module).

    Args:
        out_dir: the output folder (created; an existing file there is an error).
        methods: some of :data:`METHODS`.
        controller: the parameter controller (a shipped name or a checkpoint).
        cloner: the style-transfer network (a shipped name or a checkpoint).
        data: the example's folder.
        device: where the models run.
        progress: a progress bar over the steps.

    Returns:
        The summary (also ``summary.json``).

    Raises:
        ValueError: an unknown method, a bad example or model, an output path that is a file.
    """
    from cloner.presets import apply_preset
    from mixfx.commands.transfer import DEFAULT_METHOD
    from mixfx.effects_demo import write_json, write_wav

    methods = list(dict.fromkeys(methods))
    unknown = sorted(set(methods) - set(METHODS))
    if not methods or unknown:
        raise ValueError(f"methods must be among {list(METHODS)}, got {list(methods)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"the output {out} is not a folder")
    device = torch.device(device)
    example = load_example(data)
    rate = example.sample_rate
    steps = ["target", *methods, "measures", "files"]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(steps), desc="demo", unit="step")

    def done(name: str) -> None:
        if bar is not None:
            bar.set_postfix_str(name)
            bar.update(1)

    try:
        with torch.no_grad():
            target = apply_preset(example.style, example.input, rate)
        done("target")
        results: dict[str, _Result] = {}
        for method in methods:
            run = _run_params if method == "params" else _run_cloner
            results[method] = run(example, controller if method == "params" else cloner, device)
            done(method)
        encoder = fxencoder.load("default", device=device)  # one yardstick for every method
        anchors = {"target": _embed_stems(target, rate, encoder),
                   "reference": _embed_stems(example.reference, rate, encoder)}  # fmt: skip
        figures = {"input unchanged": _figures(example.input, target, rate, encoder, anchors)}
        for method, res in results.items():
            figures[method] = _figures(res.stems, target, rate, encoder, anchors)
        done("measures")
        mixes = {"input": _mix(example.input), "reference": _mix(example.reference),
                 "target": _mix(target)}  # fmt: skip
        mixes.update({f"output_{m}": _mix(r.stems) for m, r in results.items()})
        default = DEFAULT_METHOD if DEFAULT_METHOD in results else methods[0]
        out.mkdir(parents=True, exist_ok=True)
        files = {}
        for name, x in mixes.items():
            files[name] = out / f"{name}.wav"
            write_wav(files[name], x[None], rate)
        files["output"] = out / "output.wav"
        write_wav(files["output"], mixes[f"output_{default}"][None], rate)
        if "params" in results:
            files["preset"] = results["params"].preset.save(out / "preset.json")
        summary: dict[str, Any] = {
            "format": "mixfx.demo/1",
            "example": example.info,
            "sample_rate": rate,
            "seconds": next(iter(example.input.values())).shape[-1] / rate,
            "device": str(device),
            "default_method": default,
            "models": {"params": controller, "cloner": cloner, "measures": "encoder default"},
            "figures": figures,
            "relative": {m: _relative(figures[m], figures["input unchanged"]) for m in results},
            "timings_s": {m: r.seconds for m, r in results.items()},
            "mixes": {k: _describe_mix(v, rate) for k, v in mixes.items()},
        }
        files["comparison"] = out / "comparison.png"
        stem_sets = {"input": example.input, "reference": example.reference, "target": target}
        stem_sets.update({f"output_{m}": r.stems for m, r in results.items()})
        _plot(files["comparison"], mixes, stem_sets, summary, rate)
        files["summary"] = out / "summary.json"
        summary["files"] = {k: str(v) for k, v in files.items()}
        write_json(files["summary"], summary)
        done("files")
    finally:
        if bar is not None:
            bar.close()
    return summary


def format_report(summary: Mapping[str, Any]) -> str:
    """What the demo did, its figures and where its files are, as a few lines of text."""
    ex = summary["example"]
    lines = [
        f"mixfx demo: {summary['seconds']:g} s of {ex.get('input', '?')} (4 stems) converted to "
        f"the mixing style of {ex.get('reference', '?')}, {summary['sample_rate']} Hz, on "
        f"{summary['device']}",
        "",
        f"  {'':<16} {'MSS L/R':>9} {'MSS M/S':>9} {'ΔΦ target':>10} {'ΔΦ ref':>8}   "
        "(to the target: the input through the reference's own chains; lower is closer)",
    ]
    base = summary["figures"]["input unchanged"]
    for name, f in summary["figures"].items():
        cells = []
        for k, w in (("mss_lr", 9), ("mss_ms", 9), ("emb_target", 10), ("emb_reference", 8)):
            cells.append(f"{f[k]:>{w}.3f}")
        line = f"  {name:<16} {' '.join(cells)}"
        if name != "input unchanged":
            rel = [f"{(f[k] / base[k] - 1) * 100:+.0f} %" for k in ("mss_lr", "emb_target")]
            line += f"   MSS {rel[0]}, ΔΦ {rel[1]}; {summary['timings_s'][name]:.1f} s"
        lines.append(line)
    lines += ["", f"  default method: {summary['default_method']} (output.wav)", ""]
    width = max(len(k) for k in summary["files"])
    lines += [f"  {k:<{width}}  {v}" for k, v in summary["files"].items()]
    return "\n".join(lines)
