"""``mixfx corpus build`` and ``mixfx corpus pack``: the offline corpus and segment packs.

``build`` renders the MIDI songs of Debian packages with fluidsynth into MUSDB-layout stems
(:mod:`fxdata.corpus`; needs the ``data`` extra and ``fluidsynth``); ``pack`` writes a compact
int16 segment pack of any dataset, small enough to carry to a training machine
(:mod:`fxdata.pack`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mixfx.commands.common import CLIError, number_in_range, require

__all__ = ["DESCRIPTION", "HELP", "NAME", "configure", "run"]

NAME = "corpus"
HELP = "build the offline multitrack corpus, or pack segments of a dataset"
DESCRIPTION = (
    "Build the offline multitrack corpus (corpus build), or write a compact segment pack of a "
    "dataset (corpus pack)."
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``build`` and ``pack`` actions with their options to ``parser``."""
    corpus_sub = parser.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
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
        "--max-seconds", metavar="S", type=number_in_range(float, 10.0, 3600.0, "seconds"),
        default=240.0, help="cut songs longer than this, in seconds (default: 240)",
    )  # fmt: skip
    build.add_argument(
        "--workers", metavar="N", type=number_in_range(int, 1, 64, "worker count"), default=2,
        help="parallel rendering processes (default: 2)",
    )  # fmt: skip
    build.add_argument(
        "--limit", metavar="N", type=number_in_range(int, 1, 10**6, "song count"), default=None,
        help="render at most N songs (default: all)",
    )  # fmt: skip
    build.add_argument(
        "--seed", metavar="N", type=number_in_range(int, 0, 2**31 - 1, "seed"), default=0,
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
        "--max-mib", metavar="MIB", type=number_in_range(float, 0.001, 1e6, "size in MiB"),
        default=40.0, help="size limit of the two files together in MiB (default: 40)",
    )  # fmt: skip
    pack.add_argument(
        "--seconds", metavar="S", type=number_in_range(float, 0.01, 600.0, "segment seconds"),
        default=6.0, help="segment length in seconds (default: 6)",
    )  # fmt: skip
    pack.add_argument(
        "--seed", metavar="N", type=number_in_range(int, 0, 2**31 - 1, "seed"), default=0,
        help="seed of the track and offset orders (default: 0)",
    )  # fmt: skip
    pack.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def _pack(args: argparse.Namespace) -> int:
    require("soundfile", "data", "mixfx corpus pack")
    require("tqdm", "data", "mixfx corpus pack")
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


def run(args: argparse.Namespace) -> int:
    """Run ``corpus build`` or ``corpus pack``."""
    if args.corpus_command == "pack":
        return _pack(args)
    require("soundfile", "data", "mixfx corpus build")
    require("mido", "data", "mixfx corpus build")
    if not args.no_progress:
        require("tqdm", "data", "mixfx corpus build")
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
