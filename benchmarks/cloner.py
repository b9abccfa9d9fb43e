"""Whole-song style transfer: real-time factor of the small preset, and small vs paper per second.

Setting: a four-stem song (drums, bass, other, vocals; stereo, 44.1 kHz, float32; default
3 minutes) converted with the ``"small"`` cloner and the ``"small"`` encoder on the CPU, exactly as
``mixfx transfer`` does it after reading the stems (:func:`cloner.inference.transfer_stems`: the
reference stems' embeddings, then the network window by window with its context and
cross-fades, the four stems in one batch, then the sum), beside "input unchanged" (the stems
copied and summed, the no-processing baseline). Each is reported as a real-time factor
``RTF = compute seconds / audio seconds`` (below 1: faster than real time) and as "× real time"
``1 / RTF``. The weights are random (the cost does not depend on them).

Second table: the cost of the network alone per second of audio (one stereo stem, one forward
pass over a clip, eval mode, no gradients) for the ``"small"`` (stride-64 filterbank TCN) and
``"paper"`` (the reference's waveform-rate TCN) presets, with their parameter counts and the
overhead of the windows' context on a song of the given length (input samples processed / output
samples).

Each figure is the median of ``--repeats`` runs after a warm-up run. Results are appended to
``benchmarks/RESULTS.md`` (not for ``--quick``, a smoke test, unless ``--append``).

Usage::

    python benchmarks/cloner.py              # 3-minute song; minutes of CPU: not beside training
    python benchmarks/cloner.py --quick      # 10-s song, short clips: a check of the script
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

# This file is named like the package it measures: take its folder off the path while the
# package is imported (``python benchmarks/cloner.py`` puts it first), then back for effects.py.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.modules.pop("cloner", None)

import torch  # noqa: E402

from cloner import ClonerConfig, MixFXCloner  # noqa: E402
from cloner.inference import plan_windows, transfer_stems  # noqa: E402
from fxencoder import FXEncoder, FXEncoderConfig  # noqa: E402

sys.path.append(str(_HERE))
from common import STEMS, song, timed  # noqa: E402  (benchmarks/common.py)
from effects import machine  # noqa: E402  (benchmarks/effects.py: the machine description)

SR = 44100


def song_table(args: argparse.Namespace, device: torch.device) -> tuple[str, list[dict]]:
    torch.manual_seed(0)
    cloner = MixFXCloner(ClonerConfig.preset("small")).to(device).eval()
    encoder = FXEncoder(FXEncoderConfig.preset("small")).to(device).eval()
    stems = song(args.seconds, 0)
    reference = song(args.reference_seconds, 1)

    def unchanged() -> torch.Tensor:
        copies = {k: v.clone() for k, v in stems.items()}
        return sum(copies.values())

    def transfer() -> torch.Tensor:
        return transfer_stems(cloner, encoder, stems, SR, reference, SR).mix

    def embed_only() -> None:
        for name in STEMS:
            encoder.embed(reference[name], SR)

    rows = []
    for label, fn in (
        ("input unchanged (copy + sum)", unchanged),
        ("reference embeddings only (small encoder)", embed_only),
        ("cloner small, whole pipeline (transfer_stems)", transfer),
    ):
        sec = timed(fn, args.repeats, device)
        rows.append({"method": label, "seconds": sec, "rtf": sec / args.seconds})
        print(f"{label:<48} {sec:9.3f} s  RTF {sec / args.seconds:.5f}", flush=True)
    lines = [
        "| method | compute (s) | RTF | × real time |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['seconds']:.3f} | {r['rtf']:.5f} | {1 / r['rtf']:.0f}× |"
        )
    return "\n".join(lines), rows


def preset_table(args: argparse.Namespace, device: torch.device) -> tuple[str, list[dict]]:
    rows = []
    song_n = round(args.seconds * SR)
    for name, clip in (("small", args.clip_seconds), ("paper", args.paper_clip_seconds)):
        cfg = ClonerConfig.preset(name)
        torch.manual_seed(0)
        model = MixFXCloner(cfg).to(device).eval()
        n = round(clip * cfg.sample_rate)
        x = 0.1 * torch.randn(1, 2, n, device=device)
        cond = torch.randn(1, cfg.cond_dim, device=device)

        def forward(
            model: MixFXCloner = model, x: torch.Tensor = x, c: torch.Tensor = cond
        ) -> None:
            with torch.no_grad():
                model(x, c)

        sec = timed(forward, args.repeats, device)
        plan = plan_windows(song_n, cfg)
        overhead = sum(w.in_end - w.in_start for w in plan) / song_n
        rows.append({
            "preset": name, "params": model.num_parameters(), "clip": clip,
            "per_second": sec / clip, "rf_s": cfg.receptive_field / cfg.sample_rate,
            "windows": len(plan), "overhead": overhead,
        })  # fmt: skip
        print(
            f"{name:<6} {model.num_parameters() / 1e6:6.2f} M params  {sec / clip:9.4f} s per "
            f"second of audio ({clip:g}-s clip)  context overhead ×{overhead:.2f}",
            flush=True,
        )
    ratio = rows[1]["per_second"] / rows[0]["per_second"]
    lines = [
        "| preset | parameters | receptive field (s) | network s per audio s | windows on the "
        "song | context overhead |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['params'] / 1e6:.2f} M | {r['rf_s']:.2f} | "
            f"{r['per_second']:.4f} | {r['windows']} | ×{r['overhead']:.2f} |"
        )
    lines.append(f"\n- paper / small cost per second of audio: **{ratio:.0f}×**")
    return "\n".join(lines), rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=180.0, help="song length (default 180)")
    ap.add_argument("--reference-seconds", type=float, default=30.0, help="reference length")
    ap.add_argument("--clip-seconds", type=float, default=10.0, help="small preset's clip")
    ap.add_argument("--paper-clip-seconds", type=float, default=1.0, help="paper preset's clip")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="10-s song, short clips, one repeat")
    ap.add_argument("--append", action="store_true", help="append to RESULTS.md with --quick")
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.reference_seconds, args.repeats = 10.0, 5.0, 1
        args.clip_seconds, args.paper_clip_seconds = 2.0, 0.1
    device = torch.device(args.device)
    header = (
        f"four-stem song of {args.seconds:g} s (reference {args.reference_seconds:g} s), stereo "
        f"{SR} Hz, float32, {device.type}, median of {args.repeats}"
    )
    print(f"# cloner inference — {header}\n# {machine()}")
    song_md, _ = song_table(args, device)
    preset_md, _ = preset_table(args, device)
    print("\n" + song_md + "\n\n" + preset_md)
    if args.quick and not args.append:
        print("\n(--quick: not appended to the results)")
        return
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with args.results.open("a") as fh:
        fh.write(f"\n## cloner.py — {stamp}\n{header}; {machine()}\n\n{song_md}\n\n{preset_md}\n")
    print(f"\nappended to {args.results}")


if __name__ == "__main__":
    main()
