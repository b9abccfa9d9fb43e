"""Items per second of the random effect chain, beside dasp-pytorch and pedalboard, one process.

Setting (the issue's): batch 32 × stereo × 5 s at 44.1 kHz, float32, forward only.

- ``mixfx full``: ``fxdsp.Manipulator(fxdsp.sample_params(32))`` — the whole reference chain
  (EQ, compressor, pan, imager, reverb send, gain; per-stem probabilities, RMS matches).
- ``mixfx 4-fx`` vs ``dasp 4-fx``: like for like, every item gets EQ → compressor → imager →
  gain (probabilities 1, pan and reverb 0), each followed by the same RMS match, in both
  libraries (dasp's EQ has six bands: its extra peak is left at 0 dB).
- ``pedalboard loop``: what a user without differentiability would do: pedalboard's EQ filters,
  compressor, Freeverb and gain (and a numpy mid/side imager) built per item from the same draw
  and run in a plain Python loop over the batch.

With CUDA present, ``mixfx full`` is also timed on the GPU at batch 256. Results are appended to
``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/manipulator.py            # full run
    python benchmarks/manipulator.py --quick    # batch 4 × 1 s: a smoke test of the script
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from effects import machine  # benchmarks/effects.py: the machine description

import fxdsp

FOUR_FX = {"eq": 1.0, "compressor": 1.0, "pan": 0.0, "imager": 1.0, "reverb": 0.0, "gain": 1.0}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def items_per_second(
    run: Callable[[int], object], batch: int, repeats: int, device: torch.device
) -> float:
    """Median items/s over ``repeats`` calls ``run(seed)`` after one warm-up call."""
    rates = []
    for i in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        with torch.no_grad():
            run(i)
        _sync(device)
        if i:
            rates.append(batch / (time.perf_counter() - t0))
    return statistics.median(rates)


def _rms_match(y: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    return y * (level / y.square().mean(dim=(1, 2)).sqrt().clamp_min(1e-8)).view(-1, 1, 1)


def dasp_four_fx(x: torch.Tensor, p: fxdsp.FxParams, sr: int) -> torch.Tensor:
    """EQ → compressor → imager → gain with dasp-pytorch, RMS-matched like fxdsp's chain."""
    import dasp_pytorch.functional as D

    level = x.square().mean(dim=(1, 2)).sqrt()
    g, f, q = p["eq.gain_db"], p["eq.freq_hz"], p["eq.q"]
    zero = torch.zeros_like(g[:, 0])
    kw = {
        "low_shelf_gain_db": g[:, 0],
        "low_shelf_cutoff_freq": f[:, 0],
        "low_shelf_q_factor": q[:, 0],
    }
    for i in range(3):
        kw |= {
            f"band{i}_gain_db": g[:, i + 1],
            f"band{i}_cutoff_freq": f[:, i + 1],
            f"band{i}_q_factor": q[:, i + 1],
        }
    kw |= {
        "band3_gain_db": zero,
        "band3_cutoff_freq": zero + 1000.0,
        "band3_q_factor": zero + 0.707,
    }
    kw |= {
        "high_shelf_gain_db": g[:, 4],
        "high_shelf_cutoff_freq": f[:, 4],
        "high_shelf_q_factor": q[:, 4],
    }
    y = _rms_match(D.parametric_eq(x, sr, **kw), level)
    c = p.effect("compressor")
    y = D.compressor(
        y, sr, c["threshold_db"], c["ratio"], c["attack_ms"], c["release_ms"], zero, zero
    )
    y = _rms_match(y, level)
    y = _rms_match(D.stereo_widener(y, sr, (p["imager.width"] / 2).view(-1, 1)), level)
    return D.gain(y, sr, p["gain.gain_db"])


def pedalboard_loop(x: np.ndarray, p: fxdsp.FxParams, sr: int) -> np.ndarray:
    """The same draw through pedalboard, one item at a time (no gradients)."""
    import pedalboard as pb

    out = np.empty_like(x)
    for i in range(x.shape[0]):
        y = x[i]
        level = np.sqrt(np.mean(y**2)) + 1e-12
        chain = p.chain(i)
        g, f, q = (p[k][i].tolist() for k in ("eq.gain_db", "eq.freq_hz", "eq.q"))
        for name in chain:
            if name == "eq":
                board = pb.Pedalboard(
                    [pb.LowShelfFilter(f[0], g[0], q[0])]
                    + [pb.PeakFilter(f[k], g[k], q[k]) for k in (1, 2, 3)]
                    + [pb.HighShelfFilter(f[4], g[4], q[4])]
                )
                y = board(y, sr)
            elif name == "compressor":
                comp = pb.Compressor(
                    float(p["compressor.threshold_db"][i]),
                    float(p["compressor.ratio"][i]),
                    float(p["compressor.attack_ms"][i]),
                    float(p["compressor.release_ms"][i]),
                )
                y = comp(y, sr)
            elif name == "imager":
                w = float(p["imager.width"][i])
                mid, side = (y[0] + y[1]) / 2, (y[0] - y[1]) / 2
                mid, side = mid * min(1.0, 2.0 - w), side * min(1.0, w)
                y = np.stack([mid + side, mid - side])
            elif name == "pan":
                theta = (float(p["pan.pan"][i]) + 1) * np.pi / 4
                y = y * np.array([[np.cos(theta)], [np.sin(theta)]], dtype=y.dtype) * np.sqrt(2)
            elif name == "reverb":
                mix = float(p["reverb.mix"][i])
                rev = pb.Reverb(
                    room_size=min(float(p["reverb.rt60_s"][i]) / 3.0, 1.0),
                    wet_level=mix,
                    dry_level=1 - mix,
                )
                y = rev(y, sr)
            elif name == "gain":
                y = pb.Gain(float(p["gain.gain_db"][i]))(y, sr) * (
                    -1.0 if bool(p["gain.invert_polarity"][i]) else 1.0
                )
                continue
            y = y * (level / (np.sqrt(np.mean(y**2)) + 1e-12))
        out[i] = y
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="batch 4 × 1 s, one repeat")
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = ap.parse_args()
    if args.quick:
        args.batch, args.seconds, args.repeats = 4, 1.0, 1
    sr = 44100
    cpu = torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(args.batch, 2, round(args.seconds * sr), generator=gen)
    x_np = x.numpy()

    def draw(
        seed: int, probabilities: dict | None = None, batch: int = args.batch
    ) -> fxdsp.FxParams:
        g = torch.Generator().manual_seed(seed)
        st = [fxdsp.STEMS[i % 4] for i in range(batch)]
        return fxdsp.sample_params(batch, stems=st, probabilities=probabilities, generator=g)

    full_draws = [draw(s) for s in range(args.repeats + 1)]
    four_draws = [draw(s, FOUR_FX) for s in range(args.repeats + 1)]
    rows: list[tuple[str, float]] = []
    rows.append(
        (
            "mixfx full chain (CPU)",
            items_per_second(
                lambda s: fxdsp.Manipulator(full_draws[s])(x), args.batch, args.repeats, cpu
            ),
        )
    )
    rows.append(
        (
            "mixfx 4-fx like-for-like (CPU)",
            items_per_second(
                lambda s: fxdsp.Manipulator(four_draws[s])(x), args.batch, args.repeats, cpu
            ),
        )
    )
    rows.append(
        (
            "dasp 4-fx like-for-like (CPU)",
            items_per_second(
                lambda s: dasp_four_fx(x, four_draws[s], sr), args.batch, args.repeats, cpu
            ),
        )
    )
    rows.append(
        (
            "pedalboard full chain, loop over items (CPU)",
            items_per_second(
                lambda s: pedalboard_loop(x_np, full_draws[s], sr), args.batch, args.repeats, cpu
            ),
        )
    )
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        big = 256
        xg = 0.1 * torch.randn(big, 2, round(args.seconds * sr), device=gpu)
        gdraws = [draw(s, batch=big).to(gpu) for s in range(args.repeats + 1)]
        rows.append(
            (
                f"mixfx full chain (CUDA, batch {big})",
                items_per_second(
                    lambda s: fxdsp.Manipulator(gdraws[s])(xg), big, args.repeats, gpu
                ),
            )
        )
    full, four, dasp, pedal = (r[1] for r in rows[:4])
    header = (
        f"batch {args.batch} × {args.seconds:g} s stereo at {sr} Hz, float32, forward, "
        f"median of {args.repeats}"
    )
    lines = ["| chain | items/s |", "|---|---|"] + [f"| {n} | {v:.1f} |" for n, v in rows]
    lines += [
        "",
        f"- mixfx 4-fx / dasp 4-fx: **{four / dasp:.1f}×**",
        f"- mixfx full / pedalboard loop: **{full / pedal:.1f}×**",
    ]
    table = "\n".join(lines)
    desc = machine()
    print(f"# Manipulator — {header}\n# {desc}\n\n{table}")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with args.results.open("a") as fh:
        fh.write(f"\n## manipulator.py — {stamp}\n{header}; {desc}\n\n{table}\n")
    print(f"\nappended to {args.results}")


if __name__ == "__main__":
    main()
