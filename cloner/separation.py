"""Source separation of a mixture into drums, bass, other and vocals with Demucs, in-process.

The paper converts a mixture by separating it with Demucs, converting each stem and summing.
This module runs the real Demucs code (the optional ``separate`` extra: ``pip install
'mixfx[separate]'``, ``demucs >= 4.1``; no torchaudio needed) on weights found on this machine:
nothing is ever downloaded here.

Weights (:func:`load_separator`):

- a ``.safetensors`` file as demucs ≥ 4.1 publishes them on the Hugging Face hub (model class
  and init arguments as JSON metadata, tensors; no pickle);
- a ``.th`` file as demucs < 4.1 cached them (``~/.cache/torch/hub/checkpoints/955424e6-….th``
  for ``htdemucs``): a pickled ``{"klass", "args", "kwargs", "state"}``, read with
  ``torch.load(..., weights_only=True)`` and only the Demucs model classes allowed;
- a folder holding ``<name>.yaml`` (the bag of models: signatures, weights, segment) beside its
  models' files, e.g. the Hugging Face snapshot folder;
- nothing: the Hugging Face cache, then the torch hub cache, are looked up for ``name``.

Only the classes :class:`demucs.htdemucs.HTDemucs`, :class:`demucs.hdemucs.HDemucs` and
:class:`demucs.demucs.Demucs` are ever built from a file (demucs' own loader would call any
class a file names).

:func:`separate` normalizes the mix as demucs' command line does (zero mean, unit standard
deviation of the mono mix), runs :func:`demucs.apply.apply_model` (overlapping segments with
demucs' own cross-fade, a progress bar) and returns the stems at the input's rate and length.
Sources of a model with more than four (``htdemucs_6s``: guitar, piano) are added into
``"other"``.
"""

from __future__ import annotations

import json
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fxdsp.io import atomic_write

__all__ = [
    "DEFAULT_SEPARATOR",
    "SOURCES",
    "MissingWeightsError",
    "find_weights",
    "load_separator",
    "save_separator",
    "separate",
]

#: The stems the cloner converts, in the order of MUSDB18 and Demucs.
SOURCES: tuple[str, ...] = ("drums", "bass", "other", "vocals")
#: The separator of the paper's mixture experiments (Hybrid Transformer Demucs).
DEFAULT_SEPARATOR = "htdemucs"
_HF_NAMESPACE = "adefossez"


class MissingWeightsError(ValueError):
    """No weights for the separator on this machine (with what to do about it)."""


def _demucs() -> Any:
    try:
        import demucs.apply
        import demucs.demucs
        import demucs.hdemucs
        import demucs.htdemucs
    except ImportError:
        raise ValueError(
            "separating a mixture needs the optional package 'demucs', which is not installed: "
            "pip install 'mixfx[separate]' (or give the input as a folder of stems)"
        ) from None
    return demucs


def _model_classes() -> dict[str, type[nn.Module]]:
    d = _demucs()
    return {
        "demucs.htdemucs.HTDemucs": d.htdemucs.HTDemucs,
        "demucs.hdemucs.HDemucs": d.hdemucs.HDemucs,
        "demucs.demucs.Demucs": d.demucs.Demucs,
    }


def _missing_message(name: str) -> str:
    return (
        f"no local weights for the separator {name!r} (nothing is downloaded here). Get them "
        f'once on a machine with network: python -c "from demucs.pretrained import get_model; '
        f"get_model('{name}')\" caches them under ~/.cache/huggingface/hub; copy that snapshot "
        f"folder (or its .safetensors file) here and pass it (mixfx transfer "
        f"--separator-weights PATH), or give the input as a folder of stems "
        f"({'/'.join(SOURCES)} .wav or .flac)"
    )


# -- finding and loading weights ------------------------------------------------------------------
def find_weights(name: str = DEFAULT_SEPARATOR) -> Path | None:
    """Weights of a pretrained Demucs already on this machine, without any network access.

    Looks in the Hugging Face cache (demucs ≥ 4.1: the snapshot folder holding ``<name>.yaml``
    and its models) and then in the torch hub cache (demucs < 4.1: ``<signature>-<hash>.th``
    files, the bag read from demucs' bundled ``remote/<name>.yaml``).

    Returns:
        A folder or file for :func:`load_separator`, or ``None``.
    """
    d = _demucs()
    try:
        import yaml
        from demucs.hf import hf_repo_name
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        pass
    else:
        repo = f"{_HF_NAMESPACE}/{hf_repo_name(name)}"
        found = try_to_load_from_cache(repo, f"{name}.yaml")
        if isinstance(found, str):
            folder = Path(found).parent
            try:
                sigs = yaml.safe_load(Path(found).read_text()).get("models", [])
            except (OSError, ValueError, AttributeError):
                sigs = []
            if sigs and all((folder / f"{sig}.safetensors").exists() for sig in sigs):
                return folder
    bag = Path(d.__file__).parent / "remote" / f"{name}.yaml"
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    if bag.is_file() and hub.is_dir():
        try:
            import yaml

            sigs = yaml.safe_load(bag.read_text()).get("models", [])
        except (ImportError, OSError, ValueError, AttributeError):
            sigs = []
        files = [sorted(hub.glob(f"{sig}-*.th")) for sig in sigs]
        if sigs and all(files):
            if len(sigs) == 1:
                return files[0][0]
            return None  # a legacy bag of several files: pass the folder with its yaml
    return None


def _decode(value: Any) -> Any:
    """JSON init arguments back to Python (fractions are ``{"_type": "fraction", ...}``)."""
    if isinstance(value, dict):
        if value.get("_type") == "fraction":
            return Fraction(int(value["numerator"]), int(value["denominator"]))
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, Fraction):
        return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _build(klass: Any, args: Any, kwargs: Any, state: dict[str, Tensor], path: Path) -> nn.Module:
    import inspect

    classes = _model_classes()
    allowed = {cls: key for key, cls in classes.items()}
    if isinstance(klass, str):
        if klass not in classes:
            raise ValueError(
                f"{path}: model class {klass!r} is not a Demucs model (allowed: {sorted(classes)})"
            )
        klass = classes[klass]
    elif klass not in allowed:
        raise ValueError(f"{path}: model class {klass!r} is not a Demucs model")
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise ValueError(f"{path}: malformed model arguments")
    if state.get("__quantized"):
        raise ValueError(f"{path}: quantized (diffq) Demucs models are not supported")
    params = inspect.signature(klass).parameters
    dropped = sorted(k for k in kwargs if k not in params)
    if dropped:
        warnings.warn(f"{path}: ignoring unknown Demucs argument(s) {dropped}", stacklevel=3)
    kwargs = {k: v for k, v in kwargs.items() if k in params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # demucs' init warns about zero-size or std() corners
        try:
            model = klass(*args, **kwargs)
        except Exception as err:
            raise ValueError(f"{path}: cannot build the Demucs model: {err}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: the weights do not fit the model: {err}") from None
    return model


def _load_safetensors(path: Path) -> nn.Module:
    try:
        from safetensors import safe_open
    except ImportError:
        raise ValueError(f"{path}: reading .safetensors needs the package 'safetensors'") from None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:
        raise ValueError(f"cannot read separator weights {path}: {err}") from None
    if "klass" not in meta:
        raise ValueError(f"{path} is not a Demucs model (no 'klass' in its metadata)")
    if "structure" in meta:
        raise ValueError(f"{path}: quantized (diffq) Demucs models are not supported")
    try:
        args = _decode(json.loads(meta.get("args", "[]")))
        kwargs = _decode(json.loads(meta.get("kwargs", "{}")))
    except ValueError as err:
        raise ValueError(f"{path}: malformed model arguments: {err}") from None
    return _build(meta["klass"], args, kwargs, state, path)


def _load_package(path: Path) -> nn.Module:
    classes = list(_model_classes().values())
    try:
        with torch.serialization.safe_globals([*classes, Fraction]):
            pkg = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read separator weights {path}: {err}") from None
    if not isinstance(pkg, dict) or not {"klass", "args", "kwargs", "state"} <= set(pkg):
        raise ValueError(
            f"{path} is not a Demucs model package (expected klass, args, kwargs and state)"
        )
    return _build(pkg["klass"], pkg["args"], pkg["kwargs"], dict(pkg["state"]), path)


def _load_file(path: Path) -> nn.Module:
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    return _load_package(path)


def _load_folder(folder: Path, name: str) -> nn.Module:
    import yaml

    yamls = [folder / f"{name}.yaml"] if (folder / f"{name}.yaml").exists() else []
    yamls = yamls or sorted(folder.glob("*.yaml"))
    if len(yamls) != 1:
        found = ", ".join(p.name for p in yamls) or "none"
        raise ValueError(
            f"{folder}: expected {name}.yaml (the bag of models) in the folder, found {found}"
        )
    try:
        bag = yaml.safe_load(yamls[0].read_text())
        sigs = list(bag["models"])
    except Exception as err:
        raise ValueError(f"{yamls[0]}: not a Demucs bag of models: {err}") from None
    models = []
    for sig in sigs:
        candidates = [folder / f"{sig}.safetensors", *sorted(folder.glob(f"{sig}-*.th"))]
        candidates.append(folder / f"{sig}.th")
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            raise MissingWeightsError(
                f"{folder}: the model {sig} of {yamls[0].name} is missing ({sig}.safetensors "
                f"or {sig}-*.th)"
            )
        models.append(_load_file(hit))
    from demucs.apply import BagOfModels

    return BagOfModels(models, bag.get("weights"), bag.get("segment"))


def load_separator(
    weights: str | Path | None = None,
    *,
    name: str = DEFAULT_SEPARATOR,
    device: str | torch.device | None = None,
) -> nn.Module:
    """A Demucs model (or bag of models) in eval mode, from local weights.

    Args:
        weights: a ``.safetensors`` or ``.th`` file, or a folder with ``<name>.yaml`` (see the
            module doc); ``None``: :func:`find_weights` of ``name``.
        name: the pretrained model's name (``htdemucs``, ``htdemucs_ft``, ...), for the lookup
            and the folder's yaml.
        device: where the model goes (default CPU).

    Raises:
        MissingWeightsError: no weights given and none cached (the message says how to get
            them), or a bag's model file missing.
        ValueError: demucs not installed, an unreadable file, a file that is not a Demucs
            model, weights that do not fit.
    """
    _demucs()
    if weights is None:
        found = find_weights(name)
        if found is None:
            raise MissingWeightsError(_missing_message(name))
        weights = found
    path = Path(weights)
    if not path.exists():
        raise MissingWeightsError(f"no separator weights at {path}; " + _missing_message(name))
    model = _load_folder(path, name) if path.is_dir() else _load_file(path)
    return model.to(device or "cpu").eval()


def save_separator(model: nn.Module, path: str | Path) -> Path:
    """Write a Demucs model as the Hugging Face hub's ``.safetensors`` (class and init arguments
    as JSON metadata), atomically; :func:`load_separator` reads it back.

    Args:
        model: a Demucs, HDemucs or HTDemucs (which record their init arguments).
        path: the file (``.safetensors``).
    """
    from safetensors.torch import save_file

    classes = {cls: key for key, cls in _model_classes().items()}
    if type(model) not in classes or not hasattr(model, "_init_args_kwargs"):
        raise ValueError(f"not a Demucs model: {type(model).__name__}")
    args, kwargs = model._init_args_kwargs
    meta = {
        "klass": classes[type(model)],
        "args": json.dumps(_encode(list(args))),
        "kwargs": json.dumps(_encode(dict(kwargs))),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=meta))


# -- separating -----------------------------------------------------------------------------------
def separate(
    model: nn.Module,
    mix: Tensor,
    sample_rate: float,
    *,
    shifts: int = 0,
    overlap: float = 0.25,
    segment: float | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> dict[str, Tensor]:
    """Separate a mixture into :data:`SOURCES` with a Demucs model.

    Args:
        model: from :func:`load_separator` (a Demucs model or bag of models).
        mix: ``(batch, 1 or 2, samples)`` or ``(channels, samples)``, any rate.
        sample_rate: its rate in Hz (resampled to the model's and back).
        shifts: random time shifts averaged (demucs' "shift trick"; 0: deterministic).
        overlap: overlap of demucs' segments, in [0, 1).
        segment: segment length in seconds (default: the model's).
        device: where the model runs (default: where it is).
        progress: show demucs' progress bar.

    Returns:
        ``{source: (batch, 2, samples)}`` (``(2, samples)`` for a 2-D input), float32 on the
        CPU, at the input's rate and length. Extra sources of a six-source model are added to
        ``"other"``.

    Raises:
        ValueError: malformed audio, a model without the four sources.
    """
    from demucs.apply import apply_model

    from fxdata.audio import resample
    from fxencoder.audio import prepare_audio

    sources = list(model.sources)
    missing = [s for s in SOURCES if s not in sources]
    if missing:
        raise ValueError(f"the separator has no source(s) {missing} (it has {sources})")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    single = isinstance(mix, Tensor) and mix.ndim == 2
    n_in = mix.shape[-1]
    rate = int(model.samplerate)
    x = prepare_audio(mix, sample_rate, rate, torch.device("cpu"))  # (B, 2, N) at the model rate
    if int(model.audio_channels) == 1:
        x = x.mean(dim=1, keepdim=True)
    if device is None:
        device = next(model.parameters()).device
    ref = x.mean(dim=1, keepdim=True)
    mean = ref.mean(dim=-1, keepdim=True)
    std = (
        ref.std(dim=-1, keepdim=True).clamp(min=1e-8) if x.shape[-1] > 1 else torch.ones_like(mean)
    )
    with torch.no_grad():
        out = apply_model(
            model, (x - mean) / std, shifts=shifts, split=True, overlap=overlap,
            progress=progress, device=device, segment=segment,
        )  # fmt: skip
    out = out.float().cpu() * std[:, None] + mean[:, None]  # (B, sources, channels, N)
    if out.shape[2] == 1:
        out = out.expand(-1, -1, 2, -1)
    if float(sample_rate) != float(rate):
        b, s, c, n = out.shape
        back = resample(out.reshape(b * s * c, n).numpy(), rate, int(sample_rate))
        out = torch.from_numpy(np.ascontiguousarray(back[:, :n_in])).reshape(b, s, c, -1)
        if out.shape[-1] < n_in:
            out = torch.nn.functional.pad(out, (0, n_in - out.shape[-1]))
    stems = {name: out[:, sources.index(name)].clone() for name in SOURCES}
    for i, name in enumerate(sources):
        if name not in SOURCES:
            stems["other"] += out[:, i]
    return {k: v[0] for k, v in stems.items()} if single else stems
