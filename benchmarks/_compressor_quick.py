"""Quick CPU timing of fxdsp's compressor against dasp-pytorch's, in one process.

Setting: batch 16, stereo, 5 s at 44.1 kHz, float32, CPU; forward, and forward + backward
(gradients w.r.t. the audio and every parameter). Median of a few runs after a warm-up call
(which also compiles or loads the Numba kernels).

Run: ``.venv/bin/python benchmarks/_compressor_quick.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from fxdsp.functional.dynamics import compressor

BATCH, CHANNELS, SR, SECONDS = 16, 2, 44100, 5.0


def _params(requires_grad: bool) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)

    def u(lo: float, hi: float) -> torch.Tensor:
        v = lo + (hi - lo) * torch.rand(BATCH, generator=gen)
        return v.requires_grad_(requires_grad)

    return {
        "threshold_db": u(-40.0, -10.0),
        "ratio": u(2.0, 10.0),
        "attack_ms": u(1.0, 20.0),
        "release_ms": u(50.0, 500.0),
        "knee_db": u(0.0, 12.0),
        "makeup_db": u(0.0, 6.0),
    }


def _ours(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    return compressor(x, SR, **p)


def _dasp(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    from dasp_pytorch.functional import compressor as dasp_compressor

    q = dict(p)
    q["makeup_gain_db"] = q.pop("makeup_db")
    return dasp_compressor(x, SR, **q)


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    fn()  # warm-up (compiles or loads the Numba kernels)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    """Print forward and forward+backward times of both compressors."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-dasp", action="store_true")
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    n = int(SR * SECONDS)
    env = torch.rand(BATCH, 1, n // 2205 + 1, generator=gen).repeat_interleave(2205, -1)[..., :n]
    x0 = 0.5 * env * torch.randn(BATCH, CHANNELS, n, generator=gen)
    print(f"torch threads: {torch.get_num_threads()}, input {tuple(x0.shape)} {x0.dtype}")

    impls = {"fxdsp": _ours}
    if not args.skip_dasp:
        impls["dasp"] = _dasp
    for name, impl in impls.items():
        p_nograd = _params(False)

        def fwd(impl: Callable = impl, p: dict = p_nograd) -> None:
            with torch.no_grad():
                impl(x0, p)

        def fwd_bwd(impl: Callable = impl) -> None:
            x = x0.clone().requires_grad_(True)
            p = _params(True)
            y = impl(x, p)
            y.square().mean().backward()

        f_min, f_med = _time(fwd, args.repeats)
        fb_min, fb_med = _time(fwd_bwd, args.repeats)
        print(
            f"{name:6s} forward min {f_min * 1e3:7.1f} ms median {f_med * 1e3:7.1f} ms   "
            f"forward+backward min {fb_min * 1e3:7.1f} ms median {fb_med * 1e3:7.1f} ms"
        )


if __name__ == "__main__":
    main()
