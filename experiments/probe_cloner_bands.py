"""Where in frequency does the cloner fall short? The magnitude error per band.

    python -m experiments.probe_cloner_bands valid pedalboard|fxdsp [CLONER]

On a split of ``data/corpus`` (the items of ``mixfx eval-transfer``: 6-s segments, 4 styles
per song, seed 0): for each stem, the mean absolute difference of STFT magnitudes (FFT 4096,
hop 1024, Hann; the MSS's largest scale, L and R) between the output and the target, summed
over the bins of each band, for the input unchanged and a cloner (CLONER; default the first
shipped one, :data:`~experiments.probe_level_match.FIRST_DEFAULT`; at its own level and at the
target's loudness), with the change against the input. The small cloner analyses
frames of 128 samples (stride 64): its filters are 344 Hz apart, so a shelf below that is one
bin to it. Figures quoted in the README's independent checks.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import torch

from cloner import evaluation as ev
from experiments.probe_level_match import match_loudness, probe_args, probe_items, probed_cloner

#: Band edges in Hz.
EDGES = (0.0, 150.0, 350.0, 1000.0, 4000.0, 22050.0)
N_FFT = 4096


def band_errors(y: torch.Tensor, t: torch.Tensor, fs: int) -> np.ndarray:
    """``(items, bands)``: mean over frames and channels of ``Σ_band |Y| − |T|``."""
    window = torch.hann_window(N_FFT, dtype=torch.float64)

    def mag(a: torch.Tensor) -> torch.Tensor:
        flat = a.double().reshape(-1, a.shape[-1])
        spec = torch.stft(flat, N_FFT, N_FFT // 4, window=window, return_complex=True).abs()
        return spec.reshape(*a.shape[:-1], *spec.shape[-2:])  # (items, ch, bins, frames)

    diff = (mag(y) - mag(t)).abs().mean(dim=(1, 3))  # (items, bins)
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / fs)
    cols = [diff[:, (freqs >= lo) & (freqs < hi)].sum(1) for lo, hi in itertools.pairwise(EDGES)]
    return torch.stack(cols, 1).numpy()


def _change(a: float, b: float) -> str:
    return f"{a:.1f} ({100 * (a / b - 1):+.0f} %)"


def main(argv: list[str]) -> None:
    split, lib, path = probe_args(argv, __doc__)
    run = probed_cloner(path)
    items = probe_items(split, lib)
    fs = items.sample_rate
    names = [f"{lo:g}–{hi:g} Hz" for lo, hi in itertools.pairwise(EDGES)]
    print(f"{split} {lib}: error per band, change against input unchanged (mean over items)")
    print("| stem | method | " + " | ".join(names) + " |")
    for k, stem in enumerate(ev.STEMS):
        x, r, t = items.inputs[:, k], items.references[:, k], items.targets[:, k]
        with torch.no_grad():
            y = run(x, r, stem, fs)
        base = band_errors(x, t, fs).mean(0)
        rows = {"input unchanged": base,
                "cloner": band_errors(y, t, fs).mean(0),
                "cloner at the target's loudness": band_errors(
                    match_loudness(y, t, fs), t, fs).mean(0)}  # fmt: skip
        for name, v in rows.items():
            cells = [f"{a:.1f}" if name == "input unchanged" else _change(a, b)
                     for a, b in zip(v, base, strict=True)]  # fmt: skip
            print(f"| {stem} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
