"""Draw training triplets from a multitrack folder and listen to them: the data path of training.

For each item: ``A1`` a (optionally FX-normalized) segment of a stem of track A, ``A2`` the same
segment through a random effect chain (the cloner's ground truth), ``B2`` a segment of the same
stem type from another track through the *same* chain (the reference; with ``A2`` a positive
pair for the encoder). A thin command around :func:`fxdata.triplets.draw_triplets`, which
training scripts call directly; everything after loading runs batched on ``--device``.

Arguments are checked before any data is read: a bad ``--device`` (unknown, or CUDA/MPS where
there is none), an ``--out`` that is a file, or a missing ``--fxnorm`` file exits with status 2
and a one-line message.

Writes ``<out>/<i>_A1.wav``, ``<i>_A2.wav``, ``<i>_B2.wav``, ``triplets.json`` (track, stem,
offset and the drawn chain of every item) and ``spectra.png``.

Usage::

    python -m experiments.make_pairs --data data/corpus --out out/pairs   # or a MUSDB18-HQ root
    python -m experiments.make_pairs --data PATH --fxnorm none --items 16 --seconds 4
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

import fxdsp
from fxdsp.io import atomic_write, atomic_write_text

if TYPE_CHECKING:
    from fxdata.triplets import Triplets

SAMPLE_RATE = 44100


def load_normalizer(choice: str, device: torch.device) -> fxdsp.FxNormalizer | None:
    """``none``, ``corpus`` (shipped stats), ``reference`` (MUSDB18 scalars) or a stats JSON."""
    if choice == "none":
        return None
    if choice == "corpus":
        stats = fxdsp.FxNormStats.corpus_default()
    elif choice == "reference":
        stats = fxdsp.FxNormStats.reference_musdb18()
    else:
        stats = fxdsp.FxNormStats.from_json(choice)
    return fxdsp.FxNormalizer(stats).to(device)


def check_device(name: str) -> str | None:
    """Why ``--device name`` cannot be used here, or None when it can."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return f"--device {name!r} is not a device (expected cpu, cuda, cuda:N, mps)"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return f"--device {name}: CUDA is not available on this machine (use --device cpu)"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            return f"--device {name}: MPS is not available on this machine (use --device cpu)"
    elif device.type != "cpu":
        return f"--device {name}: only cpu, cuda and mps are supported"
    return None


def check_out(out: Path) -> str | None:
    """Why ``--out`` cannot be the output folder, or None when it can."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "names an existing file" if folder == out else f"is inside the file {folder}"
                return f"--out {out} {what}: give a folder"
            return None
    return None


def _write_wav(path: Path, audio: torch.Tensor) -> None:
    import soundfile as sf

    data = audio.T.numpy()
    peak = float(np.abs(data).max())
    if peak > 1.0:  # keep the file playable; the level is recorded in triplets.json
        data = data / peak
    atomic_write(path, lambda tmp: sf.write(tmp, data, SAMPLE_RATE, subtype="FLOAT", format="WAV"))


def _average_spectrum_db(x: torch.Tensor, n_fft: int = 4096) -> np.ndarray:
    window = torch.hann_window(n_fft, dtype=x.dtype)
    spec = torch.stft(x.mean(0), n_fft, n_fft // 4, window=window, return_complex=True).abs()
    return (20 * torch.log10(spec.mean(-1) + 1e-9)).numpy()


def _plot(path: Path, audio: dict[str, torch.Tensor], batch: Triplets, count: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    freqs = np.fft.rfftfreq(4096, 1 / SAMPLE_RATE)
    cols = min(count, 4)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for i in range(rows * cols):
        ax = axes[i // cols][i % cols]
        if i >= count:
            ax.axis("off")
            continue
        for key, colour in (("A1", "tab:blue"), ("A2", "tab:orange"), ("B2", "tab:green")):
            ax.semilogx(freqs[1:], _average_spectrum_db(audio[key][i])[1:], colour, lw=1, label=key)
        ax.set_title(
            f"{i}: {batch.stems[i]} — {', '.join(batch.params.chain(i)) or 'no fx'}", fontsize=8
        )
        ax.set_xlim(20, SAMPLE_RATE / 2)
        ax.grid(alpha=0.3, which="both")
        if i == 0:
            ax.legend(fontsize=7)
            ax.set_ylabel("dB")
    fig.suptitle("A1 input, A2 = chain(A1) ground truth, B2 = chain(B) reference: average spectra")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--data", required=True, help="multitrack folder (corpus, MUSDB18-HQ, stem folders, pack)"
    )
    ap.add_argument("--out", type=Path, default=Path("out/pairs"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fxnorm", default="corpus", help="none | corpus | reference | STATS.json")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache-dir", default=None, help="segment cache (default: ~/.cache/mixfx)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    # Every argument is checked before any data is read.
    if args.items < 1 or not 0.5 <= args.seconds <= 60:
        ap.error("--items must be >= 1 and --seconds in [0.5, 60]")
    for problem in (check_device(args.device), check_out(args.out)):
        if problem:
            ap.error(problem)
    if args.fxnorm not in ("none", "corpus", "reference") and not Path(args.fxnorm).is_file():
        ap.error(f"--fxnorm {args.fxnorm!r}: not none, corpus, reference or an existing JSON file")
    device = torch.device(args.device)
    try:
        import fxdata
        from fxdata.triplets import draw_triplets

        normalizer = load_normalizer(args.fxnorm, device)
        segments = fxdata.open_dataset(
            args.data,
            args.split,
            segment_seconds=args.seconds,
            sample_rate=SAMPLE_RATE,
            cache_dir=args.cache_dir,
        )
        if len(segments) == 0:
            raise ValueError(
                f"{args.data} ({args.split}) has no segment of {args.seconds:g} s above the "
                "silence gate"
            )
        generator = torch.Generator().manual_seed(args.seed)
        batch = draw_triplets(
            segments, args.items, generator=generator, device=device, normalizer=normalizer
        )
    except (ValueError, OSError) as err:
        print(f"make_pairs: error: {err}", file=sys.stderr)
        return 1
    audio = {key: getattr(batch, key.lower()).cpu() for key in ("A1", "A2", "B2")}
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for i, record in enumerate(batch.records()):
        for key in ("A1", "A2", "B2"):
            _write_wav(args.out / f"{i:02d}_{key}.wav", audio[key][i])
        rms = {k: float(audio[k][i].square().mean().sqrt()) for k in audio}
        records.append({**record, "rms": rms})
    atomic_write_text(args.out / "triplets.json", json.dumps(records, indent=1) + "\n")
    _plot(args.out / "spectra.png", audio, batch, args.items)
    print(f"wrote {args.items} triplets (A1, A2, B2) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
