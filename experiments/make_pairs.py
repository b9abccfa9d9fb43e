"""Draw training triplets from a multitrack folder and listen to them: the data path of training.

For each item: ``A1`` a (optionally FX-normalized) segment of a stem of track A, ``A2`` the same
segment through a random effect chain (the cloner's ground truth), ``B2`` a segment of the same
stem type from another track through the *same* chain (the reference; with ``A2`` a positive
pair for the encoder). Everything after loading runs batched on ``--device``.

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
from typing import Any

import numpy as np
import torch

import fxdsp
from fxdsp.io import atomic_write, atomic_write_text

SAMPLE_RATE = 44100


def load_normalizer(choice: str) -> fxdsp.FxNormalizer | None:
    """``none``, ``corpus`` (shipped stats), ``reference`` (MUSDB18 scalars) or a stats JSON."""
    if choice == "none":
        return None
    if choice == "corpus":
        return fxdsp.FxNormalizer(fxdsp.FxNormStats.corpus_default())
    if choice == "reference":
        return fxdsp.FxNormalizer(fxdsp.FxNormStats.reference_musdb18())
    return fxdsp.FxNormalizer(fxdsp.FxNormStats.from_json(choice))


def draw_triplets(
    data: str | Path,
    items: int,
    seconds: float,
    *,
    split: str = "train",
    seed: int = 0,
    fxnorm: str = "corpus",
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Draw ``items`` triplets ``(A1, A2, B2)`` of ``seconds`` each from the dataset at ``data``.

    Returns:
        ``{"A1", "A2", "B2"}``: ``(items, 2, samples)`` float32 tensors on the CPU; ``"params"``:
        the :class:`fxdsp.FxParams` draw; ``"meta"``: a list of per-item dicts.
    """
    from tqdm import tqdm

    import fxdata

    segments = fxdata.open_dataset(
        data, split, segment_seconds=seconds, sample_rate=SAMPLE_RATE, cache_dir=cache_dir
    )
    if len(segments) == 0:
        raise ValueError(f"{data} ({split}) has no segment of {seconds:g} s above the silence gate")
    rng = np.random.default_rng(seed)
    stems = list(segments.stems)
    a_items, b_items, meta = [], [], []
    for _ in tqdm(range(items), desc="segments", unit="pair", disable=not progress):
        a = segments.sample(rng)
        b = segments.sample(rng, stem=a["stem"])
        for _retry in range(8):  # prefer another track for the reference
            if b["track"] != a["track"]:
                break
            b = segments.sample(rng, stem=a["stem"])
        a_items.append(a["audio"])
        b_items.append(b["audio"])
        meta.append(
            {
                "stem": stems[a["stem"]],
                "A": {"track": segments.source.tracks[a["track"]].name, "offset": int(a["offset"])},
                "B": {"track": segments.source.tracks[b["track"]].name, "offset": int(b["offset"])},
            }
        )
    dev = torch.device(device)
    a1 = torch.stack(a_items).to(dev)
    b1 = torch.stack(b_items).to(dev)
    stem_names = [m["stem"] for m in meta]
    normalizer = load_normalizer(fxnorm)
    if normalizer is not None:
        a1 = normalizer(a1, stem_names)
        b1 = normalizer(b1, stem_names)
    params = fxdsp.sample_params(
        items, stems=stem_names, generator=torch.Generator().manual_seed(seed), device=dev
    )
    chain = fxdsp.Manipulator(params)
    with torch.no_grad():
        a2, b2 = chain(a1), chain(b1)
    return {"A1": a1.cpu(), "A2": a2.cpu(), "B2": b2.cpu(), "params": params, "meta": meta}


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


def _plot(path: Path, triplets: dict[str, Any], count: int) -> None:
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
            ax.semilogx(
                freqs[1:], _average_spectrum_db(triplets[key][i])[1:], colour, lw=1, label=key
            )
        m = triplets["meta"][i]
        ax.set_title(
            f"{i}: {m['stem']} — {', '.join(triplets['params'].chain(i)) or 'no fx'}", fontsize=8
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
        "--data", required=True, help="multitrack folder (corpus, MUSDB18-HQ, stem folders)"
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
    if args.items < 1 or not 0.5 <= args.seconds <= 60:
        ap.error("--items must be >= 1 and --seconds in [0.5, 60]")
    try:
        triplets = draw_triplets(
            args.data,
            args.items,
            args.seconds,
            split=args.split,
            seed=args.seed,
            fxnorm=args.fxnorm,
            device=args.device,
            cache_dir=args.cache_dir,
            progress=not args.no_progress,
        )
    except (ValueError, OSError) as err:
        print(f"make_pairs: error: {err}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for i, m in enumerate(triplets["meta"]):
        for key in ("A1", "A2", "B2"):
            _write_wav(args.out / f"{i:02d}_{key}.wav", triplets[key][i])
        rms = {k: float(triplets[k][i].square().mean().sqrt()) for k in ("A1", "A2", "B2")}
        records.append({**m, "rms": rms, "chain": triplets["params"].describe(i)})
    atomic_write_text(args.out / "triplets.json", json.dumps(records, indent=1) + "\n")
    _plot(args.out / "spectra.png", triplets, args.items)
    print(f"wrote {args.items} triplets (A1, A2, B2) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
