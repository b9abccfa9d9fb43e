"""Time every fxdsp effect beside dasp-pytorch's equivalent, in one process, and print ratios.

Setting (the issue's): a batch of 16 stereo 5-second clips at 44.1 kHz, float32, on the CPU;
forward, and forward + backward (loss = mean square of the output, gradients to the audio and
every parameter). Each figure is the median of ``--repeats`` runs after a warm-up run (which
also compiles the Numba kernels). With CUDA present, fxdsp is also timed on the GPU.

Like for like: the EQ is six RBJ bands (low shelf, four peaks, high shelf) in both libraries
(fxdsp exact IIR, dasp frequency-sampled); the compressor runs attack *and* release in fxdsp
(dasp ignores ``release_ms``); the reverb is fxdsp's parametric FFT-convolution reverb against
dasp's noise-shaped reverb (time-domain convolution of 65536 taps).

Usage::

    python benchmarks/effects.py               # full run, appends to benchmarks/RESULTS.md
    python benchmarks/effects.py --quick       # batch 2, 1 s: a smoke test of the script
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from fxdsp import functional as F

Fn = Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]


def _uniform(batch: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(batch, generator=gen)


def make_cases(
    batch: int, sr: int, gen: torch.Generator
) -> list[tuple[str, str, dict, Fn, Fn | None]]:
    """(name, input kind, params, fxdsp fn, dasp fn) for every effect."""
    import dasp_pytorch.functional as D

    u = lambda lo, hi: _uniform(batch, lo, hi, gen)  # noqa: E731
    eq = {
        "gain": torch.stack([u(-15, 15) for _ in range(6)], 1),
        "freq": torch.stack(
            [u(30, 200), u(200, 1000), u(1000, 3000), u(3000, 5000), u(5000, 8000), u(5000, 10000)],
            1,
        ),
        "q": torch.stack(
            [
                torch.full((batch,), 0.707),
                *[u(0.1, 2) for _ in range(4)],
                torch.full((batch,), 0.707),
            ],
            1,
        ),
    }
    six = ("low_shelf", "peak", "peak", "peak", "peak", "high_shelf")

    def eq_ours(x: torch.Tensor, p: dict) -> torch.Tensor:
        return F.parametric_eq(x, sr, p["gain"], p["freq"], p["q"], band_types=six)

    def eq_dasp(x: torch.Tensor, p: dict) -> torch.Tensor:
        g, f, q = p["gain"], p["freq"], p["q"]
        names = ["low_shelf", "band0", "band1", "band2", "band3", "high_shelf"]
        kw = {}
        for i, n in enumerate(names):
            kw[f"{n}_gain_db"] = g[:, i]
            kw[f"{n}_cutoff_freq"] = f[:, i]
            kw[f"{n}_q_factor"] = q[:, i]
        return D.parametric_eq(x, sr, **kw)

    comp = {
        "threshold_db": u(-40, -10),
        "ratio": u(4, 20),
        "attack_ms": u(1, 20),
        "release_ms": u(50, 500),
    }

    def comp_ours(x: torch.Tensor, p: dict) -> torch.Tensor:
        return F.compressor(x, sr, p["threshold_db"], p["ratio"], p["attack_ms"], p["release_ms"])

    def comp_dasp(x: torch.Tensor, p: dict) -> torch.Tensor:
        zeros = torch.zeros_like(p["ratio"])
        return D.compressor(
            x,
            sr,
            p["threshold_db"],
            p["ratio"],
            p["attack_ms"],
            p["release_ms"],
            zeros + 6.0,
            zeros,
        )

    gain = {"gain_db": u(-6, 9)}
    pan = {"pan": u(-1, 1)}
    width = {"width": u(0, 2)}
    rev = {"rt60_s": u(0.5, 4.0), "predelay_ms": u(0, 50), "damping": u(0, 1), "mix": u(0.3, 1.0)}
    seeds = torch.arange(batch)

    def rev_dasp(x: torch.Tensor, p: dict) -> torch.Tensor:
        kw = {f"band{i}_gain": torch.full_like(p["mix"], 0.8) for i in range(12)}
        kw |= {f"band{i}_decay": torch.full_like(p["mix"], 0.5) for i in range(12)}
        return D.noise_shaped_reverberation(x, sr, **kw, mix=p["mix"])

    return [
        (
            "gain",
            "stereo",
            gain,
            lambda x, p: F.gain(x, p["gain_db"]),
            lambda x, p: D.gain(x, sr, p["gain_db"]),
        ),
        ("parametric_eq (6 bands)", "stereo", eq, eq_ours, eq_dasp),
        ("compressor", "stereo", comp, comp_ours, comp_dasp),
        (
            "pan (mono→stereo)",
            "mono",
            pan,
            lambda x, p: F.pan(x, p["pan"]),
            lambda x, p: D.stereo_panner(x, sr, (p["pan"] + 1) / 2),
        ),
        (
            "stereo_imager",
            "stereo",
            width,
            lambda x, p: F.stereo_imager(x, p["width"]),
            lambda x, p: D.stereo_widener(x, sr, (p["width"] / 2).view(-1, 1)),
        ),
        (
            "reverb",
            "stereo",
            rev,
            lambda x, p: F.reverb(
                x, sr, p["rt60_s"], p["predelay_ms"], p["damping"], p["mix"], seeds
            ),
            rev_dasp,
        ),
        ("loudness (BS.1770)", "stereo", {}, lambda x, p: F.loudness(x, sr), None),
    ]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(
    fn: Fn, x: torch.Tensor, params: dict, backward: bool, repeats: int, warmup: bool = True
) -> float:
    """Median seconds of ``repeats`` runs after one warm-up run (if ``warmup``)."""
    times = []
    for i in range(0 if warmup else 1, repeats + 1):
        xi = x.detach().clone().requires_grad_(backward)
        pi = {
            k: v.detach().clone().requires_grad_(backward and v.is_floating_point())
            for k, v in params.items()
        }
        _sync(x.device)
        t0 = time.perf_counter()
        y = fn(xi, pi)
        if backward:
            y.square().mean().backward()
        _sync(x.device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    threads = torch.get_num_threads()
    py = platform.python_version()
    return f"{cpu}, {threads} torch threads, torch {torch.__version__}, Python {py}{gpu}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--sample-rate", type=int, default=44100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--dasp-reverb-repeats", type=int, default=1, help="dasp's reverb takes minutes"
    )
    ap.add_argument("--quick", action="store_true", help="batch 2 × 1 s, one repeat: a smoke test")
    ap.add_argument("--no-dasp", action="store_true", help="time fxdsp only")
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = ap.parse_args()
    if args.quick:
        args.batch, args.seconds, args.repeats, args.dasp_reverb_repeats = 2, 1.0, 1, 1
    sr = args.sample_rate
    gen = torch.Generator().manual_seed(0)
    n = round(args.seconds * sr)
    stereo = 0.1 * torch.randn(args.batch, 2, n, generator=gen)
    mono = stereo[:, :1].contiguous()
    cases = make_cases(args.batch, sr, gen)
    header = f"batch {args.batch} × {args.seconds:g} s at {sr} Hz, float32"
    print(f"# fxdsp vs dasp-pytorch — {header}\n# {machine()}")
    rows = []
    for name, kind, params, ours, dasp in cases:
        x = mono if kind == "mono" else stereo
        fwd = time_fn(ours, x, params, False, args.repeats)
        bwd = time_fn(ours, x, params, True, args.repeats)
        row = {"effect": name, "ours_fwd": fwd, "ours_bwd": bwd}
        if dasp is not None and not args.no_dasp:
            slow = name == "reverb"  # minutes per call: no warm-up (nothing to compile)
            reps = args.dasp_reverb_repeats if slow else args.repeats
            row["dasp_fwd"] = time_fn(dasp, x, params, False, reps, warmup=not slow)
            row["dasp_bwd"] = time_fn(dasp, x, params, True, reps, warmup=not slow)
        if torch.cuda.is_available():
            xc = x.cuda()
            pc = {k: v.cuda() for k, v in params.items()}

            def on_gpu(fn: Fn, p: dict = pc) -> Fn:
                return lambda xx, pp: fn(
                    xx, {k: v.cuda() if v.device.type == "cpu" else v for k, v in pp.items()}
                )

            row["cuda_fwd"] = time_fn(on_gpu(ours), xc, pc, False, args.repeats)
            row["cuda_bwd"] = time_fn(on_gpu(ours), xc, pc, True, args.repeats)
        rows.append(row)
        print(_format_row(row), flush=True)
    table = _table(rows)
    print("\n" + table)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with args.results.open("a") as fh:
        fh.write(f"\n## effects.py — {stamp}\n{header}; {machine()}\n\n{table}\n")
    print(f"\nappended to {args.results}")


def _format_row(r: dict) -> str:
    ms = {k: v * 1e3 for k, v in r.items() if k != "effect"}
    s = f"{r['effect']:<26} fxdsp fwd {ms['ours_fwd']:9.1f} ms  fwd+bwd {ms['ours_bwd']:9.1f} ms"
    if "dasp_fwd" in r:
        s += f" | dasp fwd {ms['dasp_fwd']:9.1f} ms  fwd+bwd {ms['dasp_bwd']:9.1f} ms"
        s += f" | speed-up ×{ms['dasp_fwd'] / ms['ours_fwd']:.1f}"
        s += f" / ×{ms['dasp_bwd'] / ms['ours_bwd']:.1f}"
    if "cuda_fwd" in r:
        s += f" | CPU/GPU ×{ms['ours_fwd'] / ms['cuda_fwd']:.0f}"
        s += f" / ×{ms['ours_bwd'] / ms['cuda_bwd']:.0f}"
    return s


def _table(rows: list[dict]) -> str:
    cols = [
        "effect",
        "fxdsp fwd (ms)",
        "fxdsp fwd+bwd (ms)",
        "dasp fwd (ms)",
        "dasp fwd+bwd (ms)",
        "dasp/fxdsp fwd",
        "dasp/fxdsp fwd+bwd",
    ]
    if any("cuda_fwd" in r for r in rows):
        cols += ["fxdsp CUDA fwd (ms)", "CPU/CUDA fwd", "CPU/CUDA fwd+bwd"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r["effect"], f"{r['ours_fwd'] * 1e3:.1f}", f"{r['ours_bwd'] * 1e3:.1f}"]
        if "dasp_fwd" in r:
            cells += [
                f"{r['dasp_fwd'] * 1e3:.1f}",
                f"{r['dasp_bwd'] * 1e3:.1f}",
                f"{r['dasp_fwd'] / r['ours_fwd']:.1f}×",
                f"{r['dasp_bwd'] / r['ours_bwd']:.1f}×",
            ]
        else:
            cells += ["—"] * 4
        if "cuda_fwd" in r:
            cells += [
                f"{r['cuda_fwd'] * 1e3:.2f}",
                f"{r['ours_fwd'] / r['cuda_fwd']:.0f}×",
                f"{r['ours_bwd'] / r['cuda_bwd']:.0f}×",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
