"""``mixfx fxnorm-stats DATA_DIR -o stats.json``: FX-normalization statistics of a folder.

It walks ``DATA_DIR`` for ``<anything>/<song>/<stem>.{wav,flac}`` files, reads them one by one
with soundfile and feeds them to :func:`fxdsp.fxnorm_stats.compute_stats`. A file that cannot
be used (unreadable or corrupt, empty, NaN or Inf samples, another sample rate, more than two
channels, shorter than 400 ms) gives a warning naming it and is skipped; the run goes on.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mixfx.commands.common import CLIError, number_in_range, require

__all__ = [
    "DESCRIPTION",
    "HELP",
    "NAME",
    "configure",
    "find_stem_files",
    "read_stem_files",
    "run",
]

NAME = "fxnorm-stats"
HELP = "compute FX-normalization statistics from a multitrack folder (DATA_DIR -o FILE)"
DESCRIPTION = (
    "Compute FX-normalization statistics (loudness, spectrum, onset peaks, stereo image per "
    "stem) from a multitrack folder <anything>/<song>/<stem>.{wav,flac}. Files that cannot be "
    "used are skipped with a warning naming them."
)
DEFAULT_OUTPUT = "fxnorm_stats.json"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``fxnorm-stats`` to ``parser``."""
    parser.add_argument("data_dir", metavar="DATA_DIR", type=Path, help="multitrack folder")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=Path,
        default=Path(DEFAULT_OUTPUT),
        help=f"output JSON file (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--n-fft",
        metavar="N",
        type=number_in_range(int, 16, 2**20, "FFT size"),
        default=4096,
        help="FFT size of the spectra (default: 4096)",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def find_stem_files(root: str | Path, stems: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """Every ``<anything>/<song>/<stem>.{wav,flac}`` below ``root``, sorted by path.

    Args:
        root: the folder to walk.
        stems: the stem names to collect (file names, case-insensitive; default
            :data:`fxdsp.registry.STEMS`).

    Returns:
        ``(stem, path)`` pairs.

    Raises:
        CLIError: ``root`` is not a folder.
    """
    if stems is None:
        from fxdsp.registry import STEMS as stems
    root = Path(root)
    if not root.is_dir():
        raise CLIError(f"{root} is not a folder")
    out = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in (".wav", ".flac") and path.is_file():
            name = path.stem.lower()
            if name in stems:
                out.append((name, path))
    return out


def read_stem_files(
    files: Iterable[tuple[str, Path]], skipped: list[Path] | None = None
) -> Iterator[tuple[str, Any, int, str]]:
    """Read each file with soundfile: ``(stem, float64 (channels, samples), rate, path)``.

    A file that libsndfile cannot open or decode (corrupt, 0 bytes, not audio) or that holds no
    samples gives a warning naming it and is left out (and appended to ``skipped``); the other
    checks (NaN samples, sample rate, channels, length) are :func:`compute_stats`'s.
    """
    import soundfile as sf

    for stem, path in files:
        try:
            data, rate = sf.read(str(path), dtype="float64", always_2d=True)
        except Exception as err:  # libsndfile raises several types for corrupt files
            warnings.warn(f"skipping unreadable audio file {path}: {err}", stacklevel=2)
            if skipped is not None:
                skipped.append(path)
            continue
        if data.size == 0:
            warnings.warn(f"skipping empty audio file {path} (no samples)", stacklevel=2)
            if skipped is not None:
                skipped.append(path)
            continue
        yield stem, data.T, rate, str(path)


def run(args: argparse.Namespace) -> int:
    """Compute the statistics of ``args.data_dir`` and write them to ``args.output``."""
    require("soundfile", "data", "mixfx fxnorm-stats")
    from fxdsp.fxnorm_stats import compute_stats
    from fxdsp.registry import STEMS

    files = find_stem_files(args.data_dir, STEMS)
    if not files:
        raise CLIError(
            f"no stem files (<song>/{{{','.join(STEMS)}}}.wav|flac) found under {args.data_dir}"
        )
    if args.output.is_dir():
        raise CLIError(f"the output {args.output} is a folder; give a file name (-o stats.json)")
    progress: Iterable[tuple[str, Path]] = files
    bar = None
    if not args.no_progress:
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            bar = tqdm(files, desc="fxnorm-stats", unit="file")
            progress = bar

    unreadable: list[Path] = []
    try:
        stats = compute_stats(
            read_stem_files(progress, unreadable),
            n_fft=args.n_fft,
            description=f"computed from {args.data_dir.resolve().name}",
        )
    except ValueError as err:
        raise CLIError(f"{err} in {args.data_dir}") from None
    finally:
        if bar is not None:
            bar.close()
    stats.extra["skipped_files"] = stats.extra.get("skipped_files", 0) + len(unreadable)
    out = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    stats.to_json(out)
    for stem, st in stats.stems.items():
        print(
            f"{stem:7s} files={st.count:4d} loudness={st.loudness_lufs:7.2f} LUFS "
            f"mid={st.mid_fraction:.3f} onset_peak={st.onset_peak_mean_db:.2f}"
            f"±{st.onset_peak_std_db:.2f} dB"
        )
    skipped = stats.extra["skipped_files"]
    print(f"wrote {out} ({skipped} file{'s' if skipped != 1 else ''} skipped)")
    return 0
