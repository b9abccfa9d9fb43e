"""``mixfx transfer INPUT REFERENCE -o OUT.wav``: convert a song to the mixing style of another.

INPUT and REFERENCE are each a mix (an audio file) or a folder of stems (``drums``, ``bass``,
``other``, ``vocals`` as ``.wav`` or ``.flac``). A mix is separated into the four stems with
Demucs (:mod:`cloner.separation`, the ``separate`` extra, local weights: ``--separator-weights``
or the Hugging Face / torch hub cache). Each input stem is converted by the style-transfer network
(:func:`cloner.inference.transfer_stems`) with the reference's matching stem as its reference,
and the converted stems are summed into ``OUT`` (stereo, at the input's rate and length:
``.wav`` as 32-bit float, ``.flac`` as 24-bit PCM). ``--save-stems`` also writes the converted
stems to the folder ``OUT_stems/`` (itself a stem folder for another transfer).

``--interpolate REFERENCE_B --segments N`` moves the style from REFERENCE to REFERENCE_B over N
equal segments of the input (the paper's interpolation); ``--interpolate REFERENCE_B --weight w``
blends the two embeddings, ``w · Φ(A) + (1 − w) · Φ(B)``, over the whole input.

The method is ``--method``: ``cloner`` (the style-transfer network, the default: the shipped
method that evaluates best on held-out songs, :data:`DEFAULT_METHOD`), ``params`` (parametric
transfer: an editable chain per stem) or ``input`` (the input stems unchanged: the "no
processing" baseline, through the same separation and summing). Without ``--method``,
``--cloner`` implies ``cloner`` and a params option (``--controller``, ``--preset``,
``--save-preset``, ``--refine``) implies ``params``.
Every output is complete or absent: all audio is computed before the first file is written, and
each file is written atomically.

``--method cloner``: the network is ``--cloner`` (a checkpoint, or a shipped name; default
``default``), and the encoder the one its checkpoint records, unless ``--encoder`` says
otherwise.

``--method params`` is parametric transfer (:mod:`cloner.parametric`): a controller
(``--controller PATH`` or a shipped name, default ``default``, with the encoder its checkpoint
records) predicts one fxdsp chain per stem (EQ, compressor, pan, imager, reverb, gain) from the
input stem and the reference's matching stem, ``--refine N`` refines it by N gradient steps
towards the reference's embedding and audio features (``--refine-from neutral`` starts from the
neutral chain and needs no controller), and each chain is applied to its whole stem at once (no
seams). ``--weight`` blends the two references' predicted *parameters*; ``--segments N`` moves
the parameters from the first reference's to the second's over N segments, each chain applied
to the whole stem and the renders joined with cross-fades. ``--save-preset FILE`` writes the
chains as a JSON preset (values with units, the RMS-match gains measured on this input) and
prints them; ``--preset FILE`` applies a saved preset to the input instead (REFERENCE is then
not read).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from mixfx.commands.common import (
    CLIError,
    check_device,
    number_in_range,
    require,
)

__all__ = [
    "DEFAULT_METHOD",
    "DESCRIPTION",
    "HELP",
    "MIN_SECONDS",
    "NAME",
    "configure",
    "read_audio",
    "read_song",
    "run",
]

NAME = "transfer"
#: The method ``mixfx transfer`` and ``mixfx demo`` use unless told otherwise: the one that
#: evaluates best on held-out songs (validation split, mix MSS L/R against input unchanged,
#: mean over styles made by fxdsp and by pedalboard: cloner −18.9 %, params −11.5 %; the
#: figures are in models/README.md).
DEFAULT_METHOD = "cloner"
HELP = "convert a song (mix or stem folder) to the mixing style of a reference"
DESCRIPTION = (
    "Convert INPUT to the mixing style of REFERENCE with the style-transfer network. Each is a "
    "mix (audio file; separated with Demucs) or a folder of stems drums/bass/other/vocals "
    "(.wav, .flac, .ogg, ...). Writes the sum of the converted stems to -o OUT (stereo, at the "
    "input's rate and length), and with --save-stems the stems to OUT_stems/."
)
#: Shortest usable audio, in seconds.
MIN_SECONDS = 0.1
_OUTPUT_SUFFIXES = (".wav", ".flac")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``transfer`` to ``parser``."""
    p = parser
    p.add_argument("input", metavar="INPUT", type=Path, help="mix file or folder of stems")
    p.add_argument(
        "reference", metavar="REFERENCE", type=Path, help="reference mix file or folder of stems"
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        type=Path,
        required=True,
        help="output file (.wav: 32-bit float, .flac: 24-bit)",
    )
    p.add_argument(
        "--save-stems",
        action="store_true",
        help="also write the converted stems to the folder OUT_stems/",
    )
    p.add_argument(
        "--method",
        choices=("cloner", "input", "params"),
        default=None,
        help="params: one predicted fxdsp chain per stem (--controller, --refine, --preset); "
        "cloner: the style-transfer network (--cloner); input: stems unchanged (default: "
        f"cloner when --cloner is given, params when a params option is, else {DEFAULT_METHOD}, "
        "the shipped method that evaluates best on held-out songs)",
    )
    p.add_argument(
        "--cloner",
        metavar="PATH|NAME",
        default=None,
        help="--method cloner: a cloner checkpoint or shipped name (default: default)",
    )
    p.add_argument(
        "--encoder",
        metavar="PATH|NAME",
        default=None,
        help="encoder checkpoint or name (default: the one the cloner records)",
    )
    p.add_argument(
        "--separator",
        metavar="NAME",
        default="htdemucs",
        help="Demucs model that separates mixes (default: htdemucs)",
    )
    p.add_argument(
        "--separator-weights",
        metavar="PATH",
        type=Path,
        default=None,
        help="local Demucs weights: .safetensors, .th, or a folder with NAME.yaml",
    )
    p.add_argument(
        "--interpolate",
        metavar="REFERENCE_B",
        type=Path,
        default=None,
        help="a second reference: interpolate (--segments) or blend (--weight)",
    )
    p.add_argument(
        "--segments",
        type=number_in_range(int, 2, 10000, "segments"),
        default=None,
        help="interpolate from REFERENCE to REFERENCE_B over N segments",
    )
    p.add_argument(
        "--weight",
        type=number_in_range(float, 0.0, 1.0, "weight"),
        default=None,
        help="blend w * REFERENCE + (1 - w) * REFERENCE_B",
    )
    p.add_argument(
        "--window",
        type=number_in_range(float, 0.01, 3600.0, "window in seconds"),
        default=None,
        help="longest window of the network in seconds (default: auto)",
    )
    p.add_argument(
        "--controller", metavar="PATH|NAME", default=None,
        help="--method params: a parameter-controller checkpoint (mixfx train-params) or "
        "shipped name (default: default)",
    )  # fmt: skip
    p.add_argument(
        "--refine", type=number_in_range(int, 0, 100000, "refinement steps"), default=0,
        help="--method params: gradient steps of refinement towards the reference (default 0)",
    )  # fmt: skip
    p.add_argument(
        "--refine-from", choices=("prediction", "neutral"), default="prediction",
        help="--method params: refine the prediction (default) or the neutral chain",
    )  # fmt: skip
    p.add_argument(
        "--refine-lr", type=number_in_range(float, 1e-6, 1.0, "learning rate"), default=0.05,
        help="--method params: the refinement's learning rate (default 0.05)",
    )  # fmt: skip
    p.add_argument(
        "--save-preset", metavar="FILE", type=Path, default=None,
        help="--method params: write the chains as a JSON preset and print them",
    )  # fmt: skip
    p.add_argument(
        "--preset", metavar="FILE", type=Path, default=None,
        help="--method params: apply this saved preset instead of predicting",
    )  # fmt: skip
    p.add_argument(
        "--max-peak", metavar="DBFS", type=number_in_range(float, -60.0, 0.0, "peak in dBFS"),
        default=None,
        help="scale the mix and its stems together (one gain) so that the mix peaks at most at "
        "DBFS, e.g. -1 (default: as the method makes it; a peak above 0 dBFS is kept in WAV "
        "and clipped with a warning in FLAC)",
    )  # fmt: skip
    p.add_argument(
        "--fxnorm", action="store_true",
        help="FX-normalize the input stems first (loudness, EQ, dynamics, image to the corpus "
        "averages), as the shipped models' training inputs were; the reference is left as it is",
    )  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="do not show progress bars")


# -- reading --------------------------------------------------------------------------------------
def read_audio(path: Path, what: str) -> tuple[Any, int]:
    """An audio file as ``(float32 tensor (channels, samples), rate)``, checked
    (:func:`mixfx.audio_files.read_audio_file`, at least :data:`MIN_SECONDS`).

    Raises:
        CLIError: an empty file or not audio, no samples, too short, more than two channels,
            NaN or Inf samples.
    """
    from mixfx.audio_files import read_audio_file

    return read_audio_file(path, f"the {what} {path}", CLIError, min_seconds=MIN_SECONDS)


def read_song(path: Path, what: str) -> tuple[str, Any, int]:
    """A mix file or a folder of stems: ``("mix", tensor, rate)`` or ``("stems", {name: tensor},
    rate)``; other files in the folder are ignored.

    Raises:
        CLIError: a missing path, a folder without all four stems (or with two files for one),
            stems at different rates, a bad audio file (see :func:`read_audio`).
    """
    from mixfx.audio_files import group_stems, read_stems

    if not path.exists():
        raise CLIError(f"the {what} {path} does not exist")
    if not path.is_dir():
        return "mix", *read_audio(path, what)
    label = f"the {what} folder {path}"
    listing = ((f.name, f) for f in sorted(path.iterdir()) if f.is_file())
    found = group_stems(listing, label, CLIError)
    files = {stem: (f, f"the {what} stem {f}") for stem, f in found.items()}
    stems, rate = read_stems(files, label, CLIError, min_seconds=MIN_SECONDS)
    return "stems", stems, rate


def _limit_peak(mix: Any, stems: dict[str, Any], max_peak_db: float) -> tuple[Any, Any, float]:
    """The mix and its stems times one gain ``min(1, 10^(max_peak_db/20) / peak(mix))`` (the
    balance and the stems' sum are kept; never turned up), and that gain in dB."""
    peak = float(mix.abs().max())
    ceiling = 10.0 ** (max_peak_db / 20.0)
    if peak <= ceiling:
        return mix, stems, 0.0
    gain = ceiling / peak
    return mix * gain, {k: v * gain for k, v in stems.items()}, 20.0 * math.log10(gain)


def _write(path: Path, audio: Any, rate: int) -> None:
    import numpy as np
    import soundfile as sf

    from fxdsp.io import atomic_write

    data = np.ascontiguousarray(audio.numpy().T)
    if path.suffix.lower() == ".flac":
        peak = float(np.abs(data).max(initial=0.0))
        if peak > 1.0:
            import warnings

            warnings.warn(
                f"{path}: peaks at {20 * math.log10(peak):+.1f} dBFS, clipped in 24-bit FLAC "
                "(write .wav for 32-bit float)",
                stacklevel=2,
            )
        data = np.clip(data, -1.0, 1.0)
        fmt, subtype = "FLAC", "PCM_24"
    else:
        fmt, subtype = "WAV", "FLOAT"
    atomic_write(path, lambda tmp: sf.write(tmp, data, rate, format=fmt, subtype=subtype))


# -- running --------------------------------------------------------------------------------------
def _resolve_method(args: argparse.Namespace) -> str:
    """``--method``, or what the other options imply, or :data:`DEFAULT_METHOD`."""
    params_options = (args.controller is not None or args.preset is not None
                      or args.save_preset is not None or args.refine > 0)  # fmt: skip
    if args.method is None:
        if args.cloner is not None and params_options:
            raise CLIError("--cloner and a --method params option: choose one with --method")
        args.method = (
            "cloner" if args.cloner is not None else "params" if params_options else DEFAULT_METHOD
        )
    if args.cloner is not None and args.method != "cloner":
        raise CLIError(f"--cloner: only with --method cloner (not {args.method})")
    args.cloner = args.cloner or "default"
    return args.method


def _check_args(args: argparse.Namespace) -> None:
    _resolve_method(args)
    if args.interpolate is None and (args.segments is not None or args.weight is not None):
        raise CLIError(
            "--segments and --weight need a second reference (--interpolate REFERENCE_B)"
        )
    if args.interpolate is not None and (args.segments is None) == (args.weight is None):
        raise CLIError(
            "--interpolate needs exactly one of --segments N (interpolation) or --weight w (blend)"
        )
    _check_params_args(args)
    out: Path = args.output
    if out.is_dir():
        raise CLIError(f"the output {out} is a folder; give a file name (-o out.wav)")
    if out.suffix.lower() not in _OUTPUT_SUFFIXES:
        raise CLIError(f"the output {out} must end in .wav or .flac")


#: The most interpolation segments of ``--method params`` (each renders every stem once).
MAX_PARAMS_SEGMENTS = 64


def _check_params_args(args: argparse.Namespace) -> None:
    given = [
        name for name, value in (
            ("--controller", args.controller), ("--refine", args.refine or None),
            ("--save-preset", args.save_preset), ("--preset", args.preset),
        ) if value is not None
    ]  # fmt: skip
    if args.method != "params":
        if given:
            raise CLIError(f"{', '.join(given)}: only with --method params")
        return
    if args.segments is not None and args.segments > MAX_PARAMS_SEGMENTS:
        raise CLIError(
            f"--segments {args.segments} with --method params: at most {MAX_PARAMS_SEGMENTS} "
            "(each segment renders every stem once more)"
        )
    if args.segments is not None and (args.refine or args.save_preset is not None):
        raise CLIError(
            "--segments with --method params changes the chain over time: no --refine or "
            "--save-preset (use --weight for one blended chain)"
        )
    if args.preset is not None:
        if args.controller or args.refine or args.interpolate is not None:
            raise CLIError(
                "--preset applies a saved chain: no --controller, --refine or --interpolate"
            )
        if args.save_preset is not None:
            raise CLIError("--preset and --save-preset: the preset is already saved")
    elif args.refine_from == "neutral" and args.interpolate is not None:
        raise CLIError("--refine-from neutral refines towards one reference: no --interpolate")


def _params(
    args: argparse.Namespace, parts: dict[str, Any], rate: int, stems: dict[str, Any],
    device: Any, progress: bool,
) -> tuple[dict[str, Any], Any, Any]:  # fmt: skip
    """``--method params``: ``(stems, mix, preset)``."""
    import torch

    from cloner import parametric as pm
    from cloner.presets import Preset, apply_preset

    if args.preset is not None:
        preset = Preset.load(args.preset)
        out_stems = apply_preset(preset, parts, rate, progress=progress)
        return out_stems, torch.stack(list(out_stems.values())).sum(0), None
    controller = None
    from_neutral = args.refine > 0 and args.refine_from == "neutral"
    name = args.controller or (None if from_neutral else "default")
    if name is not None:
        try:
            controller, info = pm.load_controller_with_info(name, device=device)
            encoder = pm.load_encoder_for_controller(info, args.encoder, device=device)
        except ValueError as err:
            raise CLIError(str(err)) from None
    else:
        import fxencoder

        encoder = fxencoder.load(args.encoder or "default", device=device)
    ref, ref_rate = stems["reference"]
    ref_b, ref_b_rate = stems.get("reference_b", (None, None))
    result = pm.transfer_params(
        controller, encoder, parts, rate, ref, ref_rate, reference_b=ref_b,
        reference_b_rate=ref_b_rate, weight=args.weight, segments=args.segments,
        refine_steps=args.refine, refine_lr=args.refine_lr, refine_from=args.refine_from,
        progress=progress,
    )  # fmt: skip
    if args.segments is not None:
        return result.stems, result.mix, None
    source = f"mixfx transfer --method params: controller {name}"
    if args.refine:
        source += f", {args.refine} refinement steps from the {args.refine_from}"
    return result.stems, result.mix, Preset.from_transfer(result, source)


def run(args: argparse.Namespace) -> int:
    """Convert; returns the exit code."""
    require("soundfile", "io", "mixfx transfer")
    import torch

    _check_args(args)
    device = check_device(args.device)
    progress = not args.no_progress

    songs = {"input": read_song(args.input, "input")}
    if args.method == "cloner" or (args.method == "params" and args.preset is None):
        songs["reference"] = read_song(args.reference, "reference")
        if args.interpolate is not None:
            songs["reference_b"] = read_song(args.interpolate, "second reference")

    cloner = encoder = None
    if args.method == "cloner":
        from cloner import api

        try:
            cloner, info = api.load_with_info(args.cloner, device=device)
            encoder = api.load_encoder_for(info, args.encoder, device=device)
        except ValueError as err:
            raise CLIError(str(err)) from None

    stems: dict[str, tuple[dict[str, Any], int]] = {}
    mixes = [k for k, (kind, _, _) in songs.items() if kind == "mix"]
    separator = None
    if mixes:
        from cloner.separation import load_separator, separate

        try:
            separator = load_separator(args.separator_weights, name=args.separator, device=device)
        except ValueError as err:
            raise CLIError(str(err)) from None
    for key, (kind, audio, rate) in songs.items():
        if kind == "mix":
            stems[key] = separate(separator, audio, rate, device=device, progress=progress), rate
        else:
            stems[key] = audio, rate

    parts, rate = stems["input"]
    if args.fxnorm:
        from cloner.inference import fx_normalize_stems

        parts = fx_normalize_stems(parts, rate)
    preset = None
    if args.method == "params":
        out_stems, mix, preset = _params(args, parts, rate, stems, device, progress)
    elif args.method == "input":
        length = max(x.shape[-1] for x in parts.values())
        out_stems = {
            k: torch.nn.functional.pad(x.expand(2, -1), (0, length - x.shape[-1]))
            for k, x in parts.items()
        }
        mix = sum(out_stems.values())
    else:
        from cloner.inference import transfer_stems

        ref, ref_rate = stems["reference"]
        ref_b, ref_b_rate = stems.get("reference_b", (None, None))
        window = None
        if args.window is not None:
            window = max(1, round(args.window * cloner.config.sample_rate))
        result = transfer_stems(
            cloner, encoder, parts, rate, ref, ref_rate, reference_b=ref_b,
            reference_b_rate=ref_b_rate, weight=args.weight, segments=args.segments,
            window=window, progress=progress,
        )  # fmt: skip
        out_stems, mix = result.stems, result.mix

    trim_db = 0.0
    if args.max_peak is not None:
        mix, out_stems, trim_db = _limit_peak(mix, out_stems, args.max_peak)
    out: Path = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    stem_dir = out.with_name(out.stem + "_stems")
    if args.save_stems:
        if stem_dir.exists() and not stem_dir.is_dir():
            raise CLIError(f"{stem_dir} exists and is not a folder (needed by --save-stems)")
        stem_dir.mkdir(exist_ok=True)
        for name, audio in out_stems.items():
            _write(stem_dir / f"{name}{out.suffix.lower()}", audio, rate)
    _write(out, mix, rate)
    if args.save_preset is not None and preset is not None:
        preset.save(args.save_preset)
        print(preset.describe())
        print(f"mixfx transfer: wrote the preset {args.save_preset}")
    seconds = mix.shape[-1] / rate
    peak = float(mix.abs().max())
    peak_db = 20 * math.log10(peak) if peak > 0 else -math.inf
    also = f" and {len(out_stems)} stems in {stem_dir}" if args.save_stems else ""
    trimmed = f", turned down {-trim_db:.1f} dB for --max-peak" if trim_db < 0 else ""
    print(
        f"mixfx transfer: wrote {out} (stereo, {rate} Hz, {seconds:.2f} s, peak "
        f"{peak_db:+.1f} dBFS{trimmed}){also}"
    )
    return 0
