"""The ``mixfx`` command line.

Subcommands:
    ``mixfx demo``: synthesize a short music example, run it through a chain of fxdsp effects and
    write ``dry.wav``, ``wet.wav``, ``spectra.png`` and ``summary.json`` (see
    ``experiments/demo.py``; needs the ``io`` and ``plot`` extras).
    ``mixfx version``: print the versions of mixfx, torch and Python.
    ``mixfx fxnorm-stats DATA_DIR -o stats.json``: FX-normalization statistics of a multitrack
    folder (see ``fxdsp/normalize.py``).
    ``mixfx corpus build``: render the offline multitrack corpus from Debian-packaged MIDI songs
    with fluidsynth (see ``fxdata/corpus.py``; needs the ``data`` extra and ``fluidsynth``).
    ``mixfx corpus pack DATA --out PACK``: write a compact int16 segment pack of a dataset, small
    enough to carry to a training machine (see ``fxdata/pack.py``).

Optional packages (soundfile, matplotlib, tqdm) are imported only inside the subcommand that needs
them, so ``import fxdsp`` never pulls them in.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["DEFAULT_DEMO_OUT", "CLIError", "add_demo_arguments", "build_parser", "main"]

PROG = "mixfx"
DEFAULT_DEMO_OUT = "out/demo"


class CLIError(Exception):
    """An error reported to the user as one line, without a traceback (exit code 1)."""


def _number_in_range(
    kind: type[int] | type[float], low: float, high: float, what: str
) -> Callable[[str], float]:
    """An argparse ``type=`` that parses ``kind`` and checks ``low <= value <= high``."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'} ({what}), got {text!r}"
            ) from None
        if not low <= value <= high:  # also rejects NaN
            raise argparse.ArgumentTypeError(
                f"{what} must be in [{low:g}, {high:g}], got {text}"
            ) from None
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def add_demo_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the demo's options to ``parser`` (shared by ``mixfx demo`` and experiments/demo.py).

    Args:
        parser: the parser to extend.

    Returns:
        The same parser.
    """
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path(DEFAULT_DEMO_OUT),
        help=(
            "folder for dry.wav, wet.wav, spectra.png and summary.json "
            f"(default: {DEFAULT_DEMO_OUT})"
        ),
    )
    parser.add_argument(
        "--seconds",
        metavar="S",
        type=_number_in_range(float, 1.0, 600.0, "duration in seconds"),
        default=6.0,
        help="length of the synthesized example in seconds, 1 to 600 (default: 6)",
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        type=_number_in_range(int, 0, 2**31 - 1, "seed"),
        default=0,
        help="seed of the synthesis and of the reverb's noise (default: 0)",
    )
    parser.add_argument(
        "--sample-rate",
        metavar="HZ",
        type=_number_in_range(int, 22050, 192000, "sample rate in Hz"),
        default=44100,
        help="sample rate in Hz, 22050 to 192000 (default: 44100)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device the effects run on, e.g. cpu or cuda (default: cpu)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="do not show a progress bar over the stages"
    )
    return parser


def _version_line() -> str:
    def dist_version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"{PROG} {dist_version('mixfx')} (torch {dist_version('torch')}, "
        f"python {platform.python_version()})"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``mixfx`` argument parser with all its subcommands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Music mixing style transfer with batched, differentiable audio effects.",
    )
    parser.add_argument("--version", action="version", version=_version_line())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="process a synthesized music example with an effect chain and plot before/after",
        description=(
            "Synthesize a short stereo music example, run it through EQ, compressor, stereo "
            "imager, reverb and loudness normalization, and write dry.wav, wet.wav, "
            "spectra.png and summary.json."
        ),
    )
    add_demo_arguments(demo)
    sub.add_parser("version", help="print the versions of mixfx, torch and Python")
    corpus = sub.add_parser(
        "corpus", help="build the offline multitrack corpus, or pack segments of a dataset"
    )
    corpus_sub = corpus.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    build = corpus_sub.add_parser(
        "build",
        help="render MIDI songs from Debian packages into 4-stem FLAC songs (MUSDB layout)",
        description=(
            "Render the MIDI songs of the installed Debian packages (openttd-openmsx, "
            "planetblupi-music-midi, freedoom, mma) with fluidsynth into drums/bass/other/vocals "
            "stems and their mixture, with a corpus.json. Re-running skips finished songs."
        ),
    )
    build.add_argument(
        "--out", metavar="DIR", type=Path, default=Path("data/corpus"),
        help="corpus folder (default: data/corpus)",
    )  # fmt: skip
    build.add_argument(
        "--source", metavar="NAME", action="append", dest="sources",
        help="a MIDI source to use (repeatable; default: every installed one)",
    )  # fmt: skip
    build.add_argument(
        "--midi-dir", metavar="DIR", action="append", type=Path, default=[],
        help=(
            "a folder of .mid files to render (repeatable); without --source, only these "
            "folders are rendered"
        ),
    )  # fmt: skip
    build.add_argument(
        "--soundfont", metavar="FILE", action="append", dest="soundfonts",
        help="a SoundFont to render with (repeatable; default: all in /usr/share/sounds/sf2|sf3)",
    )  # fmt: skip
    build.add_argument(
        "--max-seconds", metavar="S", type=_number_in_range(float, 10.0, 3600.0, "seconds"),
        default=240.0, help="cut songs longer than this, in seconds (default: 240)",
    )  # fmt: skip
    build.add_argument(
        "--workers", metavar="N", type=_number_in_range(int, 1, 64, "worker count"), default=2,
        help="parallel rendering processes (default: 2)",
    )  # fmt: skip
    build.add_argument(
        "--limit", metavar="N", type=_number_in_range(int, 1, 10**6, "song count"), default=None,
        help="render at most N songs (default: all)",
    )  # fmt: skip
    build.add_argument(
        "--seed", metavar="N", type=_number_in_range(int, 0, 2**31 - 1, "seed"), default=0,
        help="seed of the per-song SoundFont and instrument choices (default: 0)",
    )  # fmt: skip
    build.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    pack = corpus_sub.add_parser(
        "pack",
        help="write a compact int16 segment pack of a dataset (to carry to a training machine)",
        description=(
            "Select non-silent segments of DATA, round-robin over tracks with all non-silent "
            "stems of each offset, until the pack would exceed --max-mib, and write PACK.npy "
            "(int16, per-segment scale) and PACK.json; open it with --data PACK.json."
        ),
    )
    pack.add_argument("data", metavar="DATA", type=Path, help="any dataset folder (or corpus)")
    pack.add_argument(
        "--out", metavar="PACK", type=Path, required=True,
        help="the pack's prefix: PACK.npy and PACK.json are written",
    )  # fmt: skip
    pack.add_argument(
        "--split", choices=("train", "valid", "test", "all"), default="train",
        help="the split to pack (default: train)",
    )  # fmt: skip
    pack.add_argument(
        "--max-mib", metavar="MIB", type=_number_in_range(float, 0.001, 1e6, "size in MiB"),
        default=40.0, help="size limit of the two files together in MiB (default: 40)",
    )  # fmt: skip
    pack.add_argument(
        "--seconds", metavar="S", type=_number_in_range(float, 0.01, 600.0, "segment seconds"),
        default=6.0, help="segment length in seconds (default: 6)",
    )  # fmt: skip
    pack.add_argument(
        "--seed", metavar="N", type=_number_in_range(int, 0, 2**31 - 1, "seed"), default=0,
        help="seed of the track and offset orders (default: 0)",
    )  # fmt: skip
    pack.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    stats = sub.add_parser(
        "fxnorm-stats",
        add_help=False,
        help="compute FX-normalization statistics from a multitrack folder (DATA_DIR -o FILE)",
    )
    stats.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _require(module: str, extra: str, what: str) -> ModuleType:
    """Import an optional package, or raise CLIError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise CLIError(
            f"{what} needs the optional package '{module}', which is not installed: "
            f"pip install 'mixfx[{extra}]'"
        ) from None


def _load_demo_module() -> ModuleType:
    """Import experiments/demo.py from the source checkout this package lives in."""
    loaded = sys.modules.get("experiments.demo")
    if loaded is not None:
        return loaded
    root = Path(__file__).resolve().parents[1]
    path = root / "experiments" / "demo.py"
    if not path.is_file():
        raise CLIError(
            f"the demo script is not next to this installation (looked for {path}); it ships "
            "with the source checkout: run './run demo' there"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module("experiments.demo")
    except ModuleNotFoundError as err:
        if err.name not in ("experiments", "experiments.demo"):
            raise
    # Another package named `experiments` shadows the checkout's folder: load the file directly.
    spec = importlib.util.spec_from_file_location("mixfx_experiments_demo", path)
    if spec is None or spec.loader is None:
        raise CLIError(f"cannot load the demo script {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _cmd_demo(args: argparse.Namespace) -> int:
    _require("soundfile", "io", "mixfx demo")
    _require("matplotlib", "plot", "mixfx demo")
    import torch

    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise CLIError(f"unknown device {args.device!r} (try cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {args.device}: CUDA is not available on this machine")
    demo = _load_demo_module()
    summary = demo.run_demo(
        args.out,
        seconds=args.seconds,
        seed=args.seed,
        sample_rate=args.sample_rate,
        device=device,
        progress=not args.no_progress,
    )
    print(demo.format_report(summary))
    return 0


def _cmd_corpus_pack(args: argparse.Namespace) -> int:
    _require("soundfile", "data", "mixfx corpus pack")
    _require("tqdm", "data", "mixfx corpus pack")
    from fxdata.pack import pack_segments

    try:
        summary = pack_segments(
            args.data,
            args.out,
            split=args.split,
            segment_seconds=args.seconds,
            max_mib=args.max_mib,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except ValueError as err:
        raise CLIError(str(err)) from None
    per_stem = ", ".join(f"{k} {v:.0f} s" for k, v in summary["seconds_per_stem"].items())
    print(
        f"pack {summary['json']}: {summary['segments']} segments from {summary['tracks_used']} "
        f"of {summary['tracks_total']} tracks ({per_stem}), {summary['bytes'] / 2**20:.2f} MiB, "
        f"in {summary['elapsed']:.1f} s"
    )
    return 0


def _cmd_corpus(args: argparse.Namespace) -> int:
    if args.corpus_command == "pack":
        return _cmd_corpus_pack(args)
    _require("soundfile", "data", "mixfx corpus build")
    _require("mido", "data", "mixfx corpus build")
    if not args.no_progress:
        _require("tqdm", "data", "mixfx corpus build")
    from fxdata.corpus import RenderOptions, build_corpus

    try:
        summary = build_corpus(
            args.out,
            sources=args.sources or ([] if args.midi_dir else None),
            midi_dirs=args.midi_dir,
            soundfonts=args.soundfonts,
            options=RenderOptions(max_seconds=args.max_seconds, seed=args.seed),
            workers=args.workers,
            limit=args.limit,
            progress=not args.no_progress,
        )
    except (RuntimeError, ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None
    print(
        f"corpus {args.out}: {summary['songs_total']} songs, {summary['hours']:.2f} hours "
        f"(per source {summary['per_source']}, per split {summary['per_split']}), "
        f"{summary['rendered_this_run']} rendered in {summary['build_seconds']:.0f} s, "
        f"{len(summary['skipped'])} skipped"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mixfx`` command line.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 1 on an error while running, 2 on bad arguments.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help, --version and bad arguments
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        print(
            f"\n{PROG}: error: a command is required (demo, version, corpus or fxnorm-stats)",
            file=sys.stderr,
        )
        return 2
    try:
        if args.command == "version":
            print(_version_line())
            return 0
        if args.command == "demo":
            return _cmd_demo(args)
        if args.command == "corpus":
            return _cmd_corpus(args)
        if args.command == "fxnorm-stats":
            from fxdsp.normalize import stats_main

            try:
                return stats_main(args.args)
            except SystemExit as exit_:  # its own argparse: --help or bad arguments
                return exit_.code if isinstance(exit_.code, int) else 2
        raise CLIError(f"unhandled command {args.command!r}")  # pragma: no cover
    except CLIError as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # e.g. an output folder that cannot be created or written
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
