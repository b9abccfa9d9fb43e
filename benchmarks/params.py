"""Parametric style transfer: real-time factor on a whole song, and refinement cost per step.

Setting: a four-stem song (drums, bass, other, vocals; stereo, 44.1 kHz, float32; default
3 minutes) converted with the ``"small"`` parameter controller and the ``"small"`` encoder on the
CPU, exactly as ``mixfx transfer --method params`` does it after reading the stems
(:func:`cloner.parametric.transfer_params`: the embeddings of each input stem and of the
reference's matching stem, their audio features, the controller, then each stem's chain applied
to the whole stem at once), beside "input unchanged" (the stems copied and summed). Its parts
are timed too: the embeddings and features alone, and the chains alone. Each figure is a
real-time factor ``RTF = compute seconds / audio seconds`` (below 1: faster than real time;
the issue's budget is 0.1). The weights are random (the cost does not depend on them, except
that the reverb's cost does not depend on its wet fraction either: every effect always runs).

Second table: refinement (:func:`cloner.parametric.refine`) on the four stems' loudest
``--excerpt`` seconds, one step = the chain's forward and backward, the encoder's forward and
backward through its input, and the audio features; reported per step, and the whole
``--method params --refine N`` for N = ``--refine`` steps.

Each figure is the median of ``--repeats`` runs after a warm-up run. Results are appended to
``benchmarks/RESULTS.md`` (not for ``--quick``, a smoke test, unless ``--append``).

Usage::

    python benchmarks/params.py              # 3-minute song; minutes of CPU: not beside training
    python benchmarks/params.py --quick      # 10-s song, 2 refinement steps: a check of the script
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

# Take this folder off the path while the packages are imported (``python benchmarks/params.py``
# puts it first, and benchmarks/cloner.py would shadow the cloner package), then back.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.modules.pop("cloner", None)

import torch  # noqa: E402

from cloner import parametric as pm  # noqa: E402
from fxencoder import FXEncoder, FXEncoderConfig  # noqa: E402

sys.path.append(str(_HERE))
from common import STEMS, song, timed  # noqa: E402  (benchmarks/common.py)
from effects import machine  # noqa: E402  (benchmarks/effects.py: the machine description)

SR = 44100


def song_table(args: argparse.Namespace) -> tuple[str, list[dict]]:
    torch.manual_seed(0)
    controller = pm.ParamController(pm.ParamControllerConfig.preset("small")).eval()
    encoder = FXEncoder(FXEncoderConfig.preset("small")).eval()
    stems = song(args.seconds, 0)
    reference = song(args.reference_seconds, 1)
    batch = torch.stack(list(stems.values()))
    ref = torch.stack(list(reference.values()))
    u = torch.rand(4, 24, generator=torch.Generator().manual_seed(2))

    def unchanged() -> torch.Tensor:
        return sum(v.clone() for v in stems.values())

    def predict_only() -> torch.Tensor:
        return pm.predict(controller, encoder, batch, SR, ref, SR, list(STEMS))

    def chains_only() -> None:
        pm.apply_params(u, stems, SR)

    def whole() -> torch.Tensor:
        return pm.transfer_params(controller, encoder, stems, SR, reference, SR).mix

    rows = []
    for label, fn in (
        ("input unchanged (copy + sum)", unchanged),
        ("embeddings + features + controller", predict_only),
        ("chains only (4 stems, whole)", chains_only),
        ("params small, whole pipeline (transfer_params)", whole),
    ):
        sec = timed(fn, args.repeats)
        rows.append({"method": label, "seconds": sec, "rtf": sec / args.seconds})
        print(f"{label:<48} {sec:9.3f} s  RTF {sec / args.seconds:.5f}", flush=True)
    lines = ["| method | compute (s) | RTF | × real time |", "|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['seconds']:.3f} | {r['rtf']:.5f} | {1 / r['rtf']:.0f}× |"
        )
    return "\n".join(lines), rows


def refine_table(args: argparse.Namespace) -> tuple[str, dict]:
    torch.manual_seed(0)
    encoder = FXEncoder(FXEncoderConfig.preset("small")).eval()
    stems = song(args.seconds, 0)
    reference = song(args.reference_seconds, 1)
    batch = torch.stack(list(stems.values()))
    ref = torch.stack(list(reference.values()))
    x = pm.excerpt(batch, round(args.excerpt * SR))
    with torch.no_grad():
        e_ref = encoder.embed(ref, SR)
        f_ref = pm.audio_features(ref, SR)
    u0 = pm.neutral_normalized(batch=4)
    res = pm.refine(u0, x, SR, encoder, e_ref, f_ref, steps=args.refine_steps)
    per_step = res.seconds_per_step

    def full() -> None:
        pm.transfer_params(None, encoder, stems, SR, reference, SR,
                           refine_steps=args.refine, refine_from="neutral",
                           refine_seconds=args.excerpt)  # fmt: skip

    whole = timed(full, 1)
    print(
        f"refinement: {per_step:.3f} s per step (4 stems × {args.excerpt:g} s); whole "
        f"--refine {args.refine}: {whole:.2f} s, RTF {whole / args.seconds:.4f}",
        flush=True,
    )
    lines = [
        "| refinement | seconds |",
        "|---|---|",
        f"| one step (4 stems × {args.excerpt:g}-s excerpts: chain + encoder + features, "
        f"forward and backward) | {per_step:.3f} |",
        f"| whole pipeline with --refine {args.refine} --refine-from neutral | {whole:.2f} "
        f"(RTF {whole / args.seconds:.4f}) |",
    ]
    return "\n".join(lines), {"per_step": per_step, "whole": whole}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=180.0, help="song length (default 180)")
    ap.add_argument("--reference-seconds", type=float, default=30.0, help="reference length")
    ap.add_argument("--excerpt", type=float, default=3.0, help="refinement excerpt (s)")
    ap.add_argument("--refine", type=int, default=20, help="steps of the whole refined run")
    ap.add_argument("--refine-steps", type=int, default=5, help="steps timed per step")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="10-s song, few steps, one repeat")
    ap.add_argument("--append", action="store_true", help="append to RESULTS.md with --quick")
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.reference_seconds, args.repeats = 10.0, 5.0, 1
        args.excerpt, args.refine, args.refine_steps = 3.0, 2, 2
    header = (
        f"four-stem song of {args.seconds:g} s (reference {args.reference_seconds:g} s), stereo "
        f"{SR} Hz, float32, cpu, median of {args.repeats}"
    )
    print(f"# parametric transfer — {header}\n# {machine()}")
    song_md, _ = song_table(args)
    refine_md, _ = refine_table(args)
    print("\n" + song_md + "\n\n" + refine_md)
    if args.quick and not args.append:
        print("\n(--quick: not appended to the results)")
        return
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with args.results.open("a") as fh:
        fh.write(f"\n## params.py — {stamp}\n{header}; {machine()}\n\n{song_md}\n\n{refine_md}\n")
    print(f"\nappended to {args.results}")


if __name__ == "__main__":
    main()
