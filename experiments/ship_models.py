"""Turn training checkpoints into shipped models: float16 inference files with their SHA-256.

``python -m experiments.ship_models --controller RUN/last.pt --cloner RUN/last.pt`` writes
``cloner/weights/controller-default.pt`` (listed in ``cloner/weights/controllers.json``, loaded
by ``cloner.parametric.load_controller("default")``) and ``cloner/weights/cloner-default.pt``
(``cloner/weights/manifest.json``, ``cloner.load("default")``). Only the model, its config, the
encoder record (the shipped encoder's name and SHA-256) and the training step go in; the
optimizer and random states stay in the training checkpoint. Each file is written atomically
and loaded back before its manifest entry is written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cloner import api
from cloner import parametric as pm
from fxencoder.api import sha256_of


def _entry(manifest: Path, name: str, file: Path) -> None:
    data = json.loads(manifest.read_text()) if manifest.exists() else {}
    data[name] = {"file": file.name, "sha256": sha256_of(file)}
    manifest.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _extra(info: dict, checkpoint: Path) -> dict:
    return {
        "encoder": info.get("encoder"),
        "step": info.get("step"),
        "train_config": info.get("train_config"),
        "trained_from": checkpoint.as_posix(),
    }


def ship_controller(checkpoint: Path, name: str = "default") -> Path:
    """The controller of a training checkpoint as ``controller-<name>.pt`` (float16)."""
    info = pm.read_controller_info(checkpoint)
    model = pm.load_controller(checkpoint)
    out = api.WEIGHTS_DIR / f"controller-{name}.pt"
    pm.save_controller(model, out, half=True, **_extra(info, checkpoint))
    back = pm.load_controller(out)
    e, f = torch.randn(2, model.config.embed_dim), torch.randn(2, model.config.feature_dim)
    with torch.no_grad():
        diff = model(e, e, ["bass", "vocals"], f, f) - back(e, e, ["bass", "vocals"], f, f)
    print(f"{out}: {out.stat().st_size / 1e6:.2f} MB, float16 round trip max |du| "
          f"{float(diff.abs().max()):.2e}")  # fmt: skip
    _entry(pm.CONTROLLER_MANIFEST, name, out)
    return out


def ship_cloner(checkpoint: Path, name: str = "default") -> Path:
    """The network of a training checkpoint as ``cloner-<name>.pt`` (float16)."""
    info = api.read_info(checkpoint)
    model = api.load(checkpoint)
    out = api.WEIGHTS_DIR / f"cloner-{name}.pt"
    api.save(model, out, half=True, **_extra(info, checkpoint))
    api.load(out)
    print(f"{out}: {out.stat().st_size / 1e6:.2f} MB")
    _entry(api.WEIGHTS_DIR / "manifest.json", name, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--controller", type=Path, help="a controller training checkpoint")
    parser.add_argument("--cloner", type=Path, help="a cloner training checkpoint")
    parser.add_argument("--name", default="default", help="the shipped name (default: default)")
    args = parser.parse_args(argv)
    if args.controller is None and args.cloner is None:
        parser.error("give --controller and/or --cloner")
    if args.controller is not None:
        ship_controller(args.controller, args.name)
    if args.cloner is not None:
        ship_cloner(args.cloner, args.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
