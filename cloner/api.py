"""Loading and saving style-transfer networks: ``cloner.load(name_or_path)``, checkpoints.

A checkpoint is a plain dict ``{"format": "mixfx.cloner/1", "config": {...}, "state_dict":
{...}, "encoder": {...}, ...}`` that loads with ``torch.load(..., weights_only=True)``.
Training checkpoints (``format`` ``"mixfx.cloner.train/1"``, with ``"config"`` and
``"state_dict"`` at the top level like :mod:`fxencoder.training`'s) load too: their model part
is used. Named models ship inside the package (``cloner/weights/<file>.pt``) with their SHA-256
in ``cloner/weights/manifest.json`` (parameter controllers: ``controllers.json``), checked on
every load: a corrupt or truncated file gives a clear error, never a half-loaded model.

A cloner is trained on one encoder's embeddings and is meaningless with another's. The checkpoint
records which (``"encoder": {"source": name or path, "sha256": file digest, "embed_dim": size}``,
from :func:`encoder_record`); :func:`load_encoder_for` loads that encoder back (or checks one
given instead).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from cloner.config import ClonerConfig
from cloner.model import MixFXCloner
from fxdsp.io import atomic_write
from fxencoder.api import sha256_of

__all__ = [
    "FORMAT",
    "TRAIN_FORMAT",
    "WEIGHTS_DIR",
    "check_digest",
    "encoder_record",
    "load",
    "load_encoder_for",
    "load_with_info",
    "read_info",
    "resolve_shipped",
    "save",
]

FORMAT = "mixfx.cloner/1"
TRAIN_FORMAT = "mixfx.cloner.train/1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_TRAIN_HINT = (
    "train one with `mixfx train-cloner --data DIR --out RUN` and pass its checkpoint "
    "(--cloner RUN/last.pt)"
)


def encoder_record(name_or_path: str | Path, embed_dim: int | None = None) -> dict[str, Any]:
    """What a cloner checkpoint records of the encoder it was trained with.

    Args:
        name_or_path: the encoder as given to :func:`fxencoder.load` (a shipped name or a file).
        embed_dim: its embedding size (checked against the cloner's ``cond_dim`` on load).

    Returns:
        ``{"source": str, "sha256": hex digest of the file or None, "embed_dim": int or None}``
        (JSON-able). A shipped name's digest is the manifest's.
    """
    import fxencoder.api as fxapi

    text = str(name_or_path)
    manifest = _read_manifest(fxapi.WEIGHTS_DIR / "manifest.json")
    path = Path(text)
    if path.is_file():
        digest: str | None = sha256_of(path)
        text = str(path.resolve())
    elif text in manifest:
        digest = manifest[text]["sha256"]
    else:
        digest = None
    return {"source": text, "sha256": digest, "embed_dim": embed_dim}


def save(model: MixFXCloner, path: str | Path, *, half: bool = False, **extra: Any) -> str:
    """Write an inference checkpoint atomically; returns its SHA-256.

    Args:
        model: the network.
        path: the file.
        half: store floating tensors as float16 (loaded back as float32).
        **extra: more JSON-able entries; ``encoder=encoder_record(...)`` names the encoder the
            network was trained with (``mixfx transfer`` loads it by default).
    """
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
        for k, v in model.state_dict().items()
    }
    obj = {"format": FORMAT, "config": asdict(model.config), "state_dict": state, **extra}
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
    return sha256_of(path)


def _read_manifest(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the weights manifest {path}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"the weights manifest {path} is not a JSON object")
    return data


def _manifest() -> dict[str, dict[str, str]]:
    return _read_manifest(WEIGHTS_DIR / "manifest.json")


def resolve_shipped(
    name_or_path: str | Path, manifest: Path, what: str, hint: str
) -> tuple[Path, str | None]:
    """A shipped name of ``manifest`` (a file with its expected SHA-256) or an existing file.

    An existing path wins over a name. Used for cloners (``manifest.json``) and parameter
    controllers (``controllers.json``), both in ``cloner/weights/``.

    Args:
        name_or_path: a name of ``manifest`` or a file path.
        manifest: the manifest file (``{name: {"file", "sha256"}}``).
        what: ``"cloner"`` or ``"controller"``, for messages.
        hint: how to get one, appended when a name is unknown.

    Returns:
        ``(path, expected SHA-256 or None for a plain file)``.

    Raises:
        ValueError: an unknown name, a missing file, or a folder.
    """
    text = str(name_or_path)
    entries = _read_manifest(manifest)
    path = Path(text)
    if text in entries and not path.exists():
        entry = entries[text]
        return manifest.parent / entry["file"], entry["sha256"]
    if path.exists():
        if path.is_dir():
            raise ValueError(f"{path} is a folder, not a {what} checkpoint file")
        return path, None
    names = ", ".join(sorted(entries)) or "none shipped yet"
    if text == "default" or (not path.suffix and "/" not in text):
        raise ValueError(f"no {what} model named {text!r} (shipped models: {names}); {hint}")
    raise ValueError(f"no {what} file {path} (shipped models: {names})")


def check_digest(path: Path, expected: str | None) -> None:
    """Refuse a shipped file whose SHA-256 is not the manifest's (corrupt or truncated)."""
    if expected is None:
        return
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(
            f"{path} is corrupt or truncated: SHA-256 {actual[:16]}… != expected "
            f"{expected[:16]}… (restore the file from the repository)"
        )


def _resolve(name_or_path: str | Path) -> tuple[Path, str | None]:
    return resolve_shipped(name_or_path, WEIGHTS_DIR / "manifest.json", "cloner", _TRAIN_HINT)


def _read(name_or_path: str | Path) -> tuple[Path, Mapping[str, Any]]:
    path, expected = _resolve(name_or_path)
    check_digest(path, expected)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read cloner checkpoint {path}: {err}") from None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} is not a cloner checkpoint (a {type(obj).__name__})")
    if obj.get("format") not in (FORMAT, TRAIN_FORMAT):
        raise ValueError(
            f"{path} is not a cloner checkpoint (format {obj.get('format')!r}; expected "
            f"{FORMAT!r} or {TRAIN_FORMAT!r})"
        )
    if not isinstance(obj.get("config"), Mapping) or not isinstance(obj.get("state_dict"), Mapping):
        raise ValueError(f"{path}: the checkpoint has no 'config' and 'state_dict'")
    return path, obj


def read_info(name_or_path: str | Path) -> dict[str, Any]:
    """A checkpoint's entries other than the weights (format, config, encoder, extras).

    Training checkpoints' optimizer and random states are left out too.

    Raises:
        ValueError: as :func:`load`.
    """
    _, obj = _read(name_or_path)
    return _info(obj)


def _info(obj: Mapping[str, Any]) -> dict[str, Any]:
    skip = {"state_dict", "optimizer", "rng", "rng_ranks", "scheduler"}
    return {k: v for k, v in obj.items() if k not in skip}


def load(name_or_path: str | Path, device: str | torch.device | None = None) -> MixFXCloner:
    """A cloner in eval mode from a shipped name (``"default"``) or a checkpoint file.

    Accepts this package's inference (``mixfx.cloner/1``) and training
    (``mixfx.cloner.train/1``) checkpoints.

    Args:
        name_or_path: a name of ``cloner/weights/manifest.json`` or a file path.
        device: where the model goes (default CPU).

    Raises:
        ValueError: an unknown name (with the shipped names and how to train one) or a missing
            file, a SHA-256 mismatch (corrupt or truncated file), a file that
            is not a cloner checkpoint, or weights that do not fit its config.
    """
    path, obj = _read(name_or_path)
    return _build(path, obj, device)


def load_with_info(
    name_or_path: str | Path, device: str | torch.device | None = None
) -> tuple[MixFXCloner, dict[str, Any]]:
    """:func:`load` and :func:`read_info` from one read (and one SHA-256 check) of the file."""
    path, obj = _read(name_or_path)
    return _build(path, obj, device), _info(obj)


def _build(path: Path, obj: Mapping[str, Any], device: str | torch.device | None) -> MixFXCloner:
    try:
        config = ClonerConfig.from_dict(dict(obj["config"]))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: bad cloner config: {err}") from None
    model = MixFXCloner(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit the config: {err}") from None
    return model.to(device or "cpu").eval()


def _locate(record: Mapping[str, Any]) -> str:
    """The recorded encoder's source, or where the same file is now.

    A checkpoint records the encoder's absolute path; in another checkout (a fresh clone, CI, a
    colleague's machine) that path is gone. Then the path's tails are tried relative to the
    working directory (``/old/clone/checkpoints/x/enc.pt`` → ``checkpoints/x/enc.pt``, ...)
    and the shipped names; only a file with the recorded SHA-256 is taken.
    """
    import fxencoder.api as fxapi

    source = str(record["source"])
    digest = record.get("sha256")
    path = Path(source)
    manifest = _read_manifest(fxapi.WEIGHTS_DIR / "manifest.json")
    if not digest or path.exists() or source in manifest:
        return source
    parts = path.parts
    for k in range(1, len(parts)):
        tail = Path(*parts[k:])
        if tail.is_file() and sha256_of(tail) == digest:
            return str(tail)
    for name, entry in manifest.items():
        if entry.get("sha256") == digest:
            return name
    return source


def load_encoder_for(
    cloner_info: Mapping[str, Any],
    encoder: str | Path | None = None,
    device: str | torch.device | None = None,
    *,
    model_name: str = "cloner",
    dim_key: str = "cond_dim",
) -> Any:
    """The encoder a cloner (or a controller) was trained with, or ``encoder`` checked against it.

    Args:
        cloner_info: :func:`read_info` of the cloner's checkpoint (or
            :func:`cloner.parametric.read_controller_info` of a controller's).
        encoder: an encoder name or file to use instead of the recorded one (``None``: the
            recorded one, found by :func:`_locate` when its path is gone). When the checkpoint
            records a SHA-256 and this file's differs, a warning says so (the transfer will run,
            but the embeddings are not the ones the model learned from).
        device: where the encoder goes.
        model_name: ``"cloner"`` or ``"controller"``, for messages.
        dim_key: the model config's field that must equal the encoder's ``embed_dim``.

    Returns:
        An :class:`fxencoder.FXEncoder` in eval mode.

    Raises:
        ValueError: no encoder given and none recorded (or the recorded one is gone or
            changed), or an encoder whose embedding size is not the model's.
    """
    import fxencoder

    record = cloner_info.get("encoder")
    if isinstance(record, str):
        record = {"source": record, "sha256": None}
    want = int(cloner_info["config"][dim_key])

    def check_size(model: Any) -> Any:
        if model.config.embed_dim != want:
            raise ValueError(
                f"the encoder embeds in {model.config.embed_dim} dimensions but the "
                f"{model_name} takes {want}: not the encoder it was trained with"
            )
        return model

    if encoder is None:
        if not isinstance(record, Mapping) or not record.get("source"):
            raise ValueError(
                f"the {model_name} checkpoint does not record its encoder; pass the one it was "
                "trained with (--encoder PATH)"
            )
        source = _locate(record)
        try:
            model = fxencoder.load(source, device=device)
        except ValueError as err:
            raise ValueError(
                f"cannot load the encoder the {model_name} was trained with ({source}): {err}; "
                "pass it with --encoder PATH"
            ) from None
        digest = encoder_record(source)["sha256"]
        if record.get("sha256") and digest and digest != record["sha256"]:
            raise ValueError(
                f"the encoder file {source} has changed since the {model_name} was trained with "
                f"it (SHA-256 {digest[:16]}… != recorded {record['sha256'][:16]}…); pass the "
                "right one with --encoder PATH"
            )
        return check_size(model)
    model = check_size(fxencoder.load(encoder, device=device))
    digest = encoder_record(encoder)["sha256"]
    recorded = record.get("sha256") if isinstance(record, Mapping) else None
    if recorded and digest and digest != recorded:
        warnings.warn(
            f"the encoder {encoder} is not the one the {model_name} was trained with "
            f"({record.get('source')}, SHA-256 {str(recorded)[:16]}…)",
            stacklevel=2,
        )
    return model
