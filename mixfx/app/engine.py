"""The work behind ``mixfx app``: uploads checked, transfers queued, files written, presets edited.

Nothing here knows about HTTP: :class:`Engine` takes uploaded files (paths on disk), checks them
(:func:`read_song_files`), queues the transfer on one worker thread (so a slow transfer never
blocks the web server's event loop, and transfers run one after another), and writes what the
page shows into the job's folder: ``input.wav``, ``reference.wav`` (mixes), ``output.wav``, the
converted stems (``output_<stem>.wav`` and ``stems.zip``), ``preset.json`` (parametric methods),
the plots ``spectrum.png``, ``loudness.png``, ``width.png`` and their figures. A preset edit
(:meth:`Engine.rerender`) applies the edited chains to the input stems again, without the models.

Every job lives in a folder under the engine's temporary root, removed when the job is closed
(the page closes its job when it is left), when it has not been touched for ``keep_minutes``,
and all of it when the engine closes (the server stops). Every error meant for the person at the
page is an :class:`AppError` with a message that names the file and the problem.
"""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fxdsp.registry import STEMS

__all__ = [
    "METHODS",
    "AppError",
    "Engine",
    "Job",
    "Settings",
    "measure_sets",
    "read_song_files",
    "write_plots",
]

#: The page's methods: the network, the parametric controller, and the controller refined.
METHODS = ("cloner", "params", "params+refine")
MIN_SECONDS = 1.0


class AppError(Exception):
    """A problem the page shows as it is (bad upload, missing weights, bad preset value)."""


# ------------------------------------------------------------------------------------------------
# Uploads
# ------------------------------------------------------------------------------------------------
def read_song_files(
    files: Sequence[tuple[str, Path]], what: str, max_seconds: float
) -> tuple[str, Any, int]:
    """One uploaded song: a mix (one file) or stems (four files named ``drums``, ``bass``,
    ``other``, ``vocals`` with any audio extension), as ``("mix", tensor, rate)`` or
    ``("stems", {stem: tensor}, rate)``, each file checked
    (:func:`mixfx.audio_files.read_audio_file`: at least :data:`MIN_SECONDS`, at most
    ``max_seconds``, its header read before it is decoded).

    Args:
        files: ``(the name it was uploaded with, where it is on disk)`` per file.
        what: how the page calls it (``"the input"``), for the messages.
        max_seconds: the longest accepted file.

    Raises:
        AppError: no file, a file that is not a stem among several, a missing stem or two
            files for one, a bad audio file, stems at different rates.
    """
    from mixfx.audio_files import group_stems, read_audio_file, read_stems

    limits = {"min_seconds": MIN_SECONDS, "max_seconds": max_seconds}
    if not files:
        raise AppError(f"{what}: no file uploaded")
    if len(files) == 1:
        name, path = files[0]
        return "mix", *read_audio_file(path, f"{what} ({name})", AppError, **limits)
    named = [(name, (path, f"{what} ({name})")) for name, path in files]
    found = group_stems(named, what, AppError, others="refuse")
    stems, rate = read_stems(found, what, AppError, **limits)
    return "stems", stems, rate


# ------------------------------------------------------------------------------------------------
# Jobs
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """What the page asks for.

    Attributes:
        method: one of :data:`METHODS`.
        refine: refinement steps of ``"params+refine"``.
        blend: with a second reference, the weight of the first (``w · A + (1 − w) · B``: the
            embeddings for the cloner, the predicted parameters for the controller).
        fxnorm: FX-normalize the input stems first (:func:`cloner.inference.fx_normalize_stems`,
            as the models' training inputs were); the page's "input" is then the normalized one.
    """

    method: str = "cloner"
    refine: int = 20
    blend: float | None = None
    fxnorm: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise AppError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if not isinstance(self.refine, int) or not 1 <= self.refine <= 500:
            raise AppError(f"refinement steps must be an integer from 1 to 500, not {self.refine}")
        if self.blend is not None and not (
            isinstance(self.blend, float) and math.isfinite(self.blend) and 0 <= self.blend <= 1
        ):
            raise AppError(f"the blend must be between 0 and 1, not {self.blend}")


@dataclass
class Job:
    """One transfer and its files. ``state``: ``queued``, ``running``, ``done``, ``failed``."""

    id: str
    folder: Path
    settings: Settings
    state: str = "queued"
    stage: str = "waiting for the worker"
    progress: float = 0.0
    error: str | None = None
    version: int = 0
    files: dict[str, str] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    preset: dict[str, Any] | None = None
    touched: float = field(default_factory=time.monotonic)
    # What a re-render needs (kept in memory while the job lives).
    input_stems: dict[str, Any] | None = None
    reference_stems: dict[str, Any] | None = None
    sample_rate: int = 0
    reference_rate: int = 0

    def status(self, queue_position: int = 0) -> dict[str, Any]:
        """The job as the page polls it (JSON-ready)."""
        return {
            "id": self.id, "state": self.state, "stage": self.stage,
            "progress": round(self.progress, 3), "error": self.error, "version": self.version,
            "method": self.settings.method, "files": dict(self.files),
            "figures": self.figures, "preset": self.preset, "queue_position": queue_position,
        }  # fmt: skip


class Engine:
    """Checks uploads, queues transfers on one worker thread, keeps the jobs' folders.

    Args:
        max_seconds: the longest accepted upload (each file).
        separator_weights: Demucs weights for mix uploads (None: the torch hub cache, if any).
        separator: the Demucs model name.
        cloner: the cloner (shipped name or checkpoint).
        controller: the parametric controller (shipped name or checkpoint).
        device: where the models run.
        keep_minutes: a job not polled for this long is removed.
        root: the temporary folder (default: a new one under the system's temp folder).
    """

    def __init__(
        self,
        *,
        max_seconds: float = 600.0,
        separator_weights: str | None = None,
        separator: str = "htdemucs",
        cloner: str = "default",
        controller: str = "default",
        device: str = "cpu",
        keep_minutes: float = 60.0,
        root: str | Path | None = None,
    ) -> None:
        self.max_seconds = float(max_seconds)
        self.separator_weights = separator_weights
        self.separator_name = separator
        self.cloner_name = cloner
        self.controller_name = controller
        self.device = device
        self.keep_seconds = 60.0 * float(keep_minutes)
        self.root = Path(tempfile.mkdtemp(prefix="mixfx-app-", dir=root))
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._models: dict[str, Any] = {}
        self._model_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mixfx-app")
        self._queue: list[str] = []
        self._counter = itertools.count(1)

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker (after the running job) and remove every job's files."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)
        self.jobs.clear()

    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its (empty) folder, for the uploads."""
        self.sweep()
        job_id = f"{next(self._counter)}-{uuid.uuid4().hex[:12]}"
        folder = self.root / job_id
        (folder / "uploads").mkdir(parents=True)
        return job_id, folder

    def discard(self, job_id: str, folder: Path | None = None) -> None:
        """Remove a job and its folder (a closed page, or uploads that were refused)."""
        with self._lock:
            job = self.jobs.pop(job_id, None)
            if job_id in self._queue:
                self._queue.remove(job_id)
        target = job.folder if job is not None else folder
        if target is not None and target.parent == self.root:
            shutil.rmtree(target, ignore_errors=True)

    def sweep(self) -> None:
        """Remove the jobs nobody has polled for ``keep_minutes`` (and not running)."""
        now = time.monotonic()
        with self._lock:
            stale = [
                j.id
                for j in self.jobs.values()
                if j.state in ("done", "failed") and now - j.touched > self.keep_seconds
            ]
        for job_id in stale:
            self.discard(job_id)

    def get(self, job_id: str) -> Job:
        """The job (and marks it as still wanted)."""
        job = self.jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        job.touched = time.monotonic()
        return job

    def status(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        with self._lock:
            position = self._queue.index(job_id) if job_id in self._queue else 0
        return job.status(position)

    # -- submitting ---------------------------------------------------------------------------
    def submit(
        self,
        job_id: str,
        folder: Path,
        settings: Settings,
        inputs: Sequence[tuple[str, Path]],
        references: Sequence[tuple[str, Path]],
        references_b: Sequence[tuple[str, Path]] = (),
    ) -> Job:
        """Check the uploads now (an :class:`AppError` names the first problem) and queue the
        transfer."""
        if references_b and settings.blend is None:
            raise AppError("a second reference needs a blend weight")
        if settings.blend is not None and not references_b:
            raise AppError("the blend needs a second reference")
        limit = self.max_seconds
        songs = {
            "input": read_song_files(inputs, "the input", limit),
            "reference": read_song_files(references, "the reference", limit),
        }
        if references_b:
            songs["reference_b"] = read_song_files(references_b, "the second reference", limit)
        if any(kind == "mix" for kind, _, _ in songs.values()):
            self._separator()  # a mix without Demucs weights is refused now, not in the queue
        job = Job(job_id, folder, settings)
        with self._lock:
            self.jobs[job_id] = job
            self._queue.append(job_id)
        self._executor.submit(self._guarded, job, lambda: self._transfer(job, songs))
        return job

    def rerender(self, job_id: str, preset: Mapping[str, Any]) -> Job:
        """Apply an edited preset (:meth:`cloner.presets.Preset.to_dict`'s layout) to the job's
        input stems, queued like a transfer: new output files and plots, no model."""
        from cloner.presets import Preset

        job = self.get(job_id)
        if job.state != "done" or job.input_stems is None:
            raise AppError("this job has no finished transfer to re-render")
        if job.preset is None:
            raise AppError("this job has no preset (the cloner makes none; choose parametric)")
        try:
            parsed = Preset.from_dict(dict(preset))
        except (ValueError, TypeError) as err:
            raise AppError(f"the edited preset: {err}") from None
        missing = [s for s in STEMS if s not in parsed.stems]
        if missing:
            raise AppError(f"the edited preset has no stem(s) {', '.join(missing)}")
        job.state, job.stage, job.progress, job.error = "queued", "re-render queued", 0.0, None
        with self._lock:
            self._queue.append(job_id)
        self._executor.submit(self._guarded, job, lambda: self._rerender(job, parsed))
        return job

    # -- the work (on the worker thread) --------------------------------------------------------
    def _guarded(self, job: Job, work: Callable[[], None]) -> None:
        with self._lock:
            if job.id in self._queue:
                self._queue.remove(job.id)
        if job.id not in self.jobs:  # closed while it waited
            return
        job.state = "running"
        try:
            work()
            job.state, job.stage, job.progress = "done", "done", 1.0
        except AppError as err:
            job.state, job.error = "failed", str(err)
        except Exception as err:  # a bug: the page gets one line, the server log the trace
            if job.id not in self.jobs:  # closed while it ran: its folder went from under it
                return
            traceback.print_exc()
            job.state, job.error = "failed", f"the transfer failed: {type(err).__name__}: {err}"

    def _set(self, job: Job, stage: str, progress: float) -> None:
        job.stage, job.progress = stage, progress

    def _separator(self) -> Any:
        with self._model_lock:
            if "separator" not in self._models:
                from cloner.separation import load_separator

                try:
                    self._models["separator"] = load_separator(
                        self.separator_weights, name=self.separator_name, device=self.device
                    )
                except ValueError as err:
                    raise AppError(
                        f"a mix upload needs Demucs separation weights, and none are here: {err}"
                        " (upload four stems instead, or start the app with --separator-weights)"
                    ) from None
            return self._models["separator"]

    def _model(self, kind: str) -> tuple[Any, Any]:
        """``(model, encoder)`` of the cloner or the controller, loaded once."""
        with self._model_lock:
            if kind not in self._models:
                try:
                    if kind == "cloner":
                        from cloner import api

                        model, info = api.load_with_info(self.cloner_name, device=self.device)
                        encoder = api.load_encoder_for(info, device=self.device)
                    else:
                        from cloner import parametric as pm

                        model, info = pm.load_controller_with_info(
                            self.controller_name, device=self.device
                        )
                        encoder = pm.load_encoder_for_controller(info, device=self.device)
                except ValueError as err:
                    raise AppError(f"cannot load the {kind}: {err}") from None
                self._models[kind] = (model, encoder)
            return self._models[kind]

    def _transfer(self, job: Job, songs: Mapping[str, tuple[str, Any, int]]) -> None:
        import torch

        stems: dict[str, tuple[dict[str, Any], int]] = {}
        for i, (key, (kind, audio, rate)) in enumerate(songs.items()):
            if kind == "mix":
                from cloner.separation import separate

                self._set(
                    job, f"separating the {key.replace('_', ' ')} with Demucs", 0.05 + 0.1 * i
                )
                with torch.no_grad():
                    stems[key] = separate(self._separator(), audio, rate, device=self.device), rate
            else:
                stems[key] = audio, rate
        parts, rate = stems["input"]
        if job.settings.fxnorm:
            from cloner.inference import fx_normalize_stems

            self._set(job, "FX-normalizing the input stems", 0.3)
            parts = fx_normalize_stems(parts, rate)
        ref, ref_rate = stems["reference"]
        ref_b, ref_b_rate = stems.get("reference_b", (None, None))
        s = job.settings
        kind = "cloner" if s.method == "cloner" else "controller"
        self._set(job, f"loading the {kind}", 0.35)
        model, encoder = self._model(kind)
        self._set(job, "converting the stems", 0.45)
        preset = None
        if s.method == "cloner":
            from cloner.inference import transfer_stems

            result = transfer_stems(
                model, encoder, parts, rate, ref, ref_rate, reference_b=ref_b,
                reference_b_rate=ref_b_rate, weight=s.blend,
            )  # fmt: skip
            out_stems = result.stems
        else:
            from cloner import parametric as pm
            from cloner.presets import Preset

            steps = s.refine if s.method == "params+refine" else 0
            result = pm.transfer_params(
                model, encoder, parts, rate, ref, ref_rate, reference_b=ref_b,
                reference_b_rate=ref_b_rate, weight=s.blend, refine_steps=steps,
            )  # fmt: skip
            out_stems = result.stems
            source = f"mixfx app: controller {self.controller_name}"
            if steps:
                source += f", {steps} refinement steps"
            preset = Preset.from_transfer(result, source)
        job.input_stems = {k: x.expand(2, -1) for k, x in _aligned(parts).items()}
        job.sample_rate, job.reference_rate = rate, ref_rate
        job.reference_stems = {k: x.expand(2, -1) for k, x in _aligned(ref).items()}
        self._set(job, "writing and measuring", 0.85)
        _write_wav(job.folder / "input.wav", sum(job.input_stems.values()), rate)
        _write_wav(job.folder / "reference.wav", sum(job.reference_stems.values()), ref_rate)
        job.files.update({"input": "input.wav", "reference": "reference.wav"})
        self._write_outputs(job, out_stems, preset)

    def _rerender(self, job: Job, preset: Any) -> None:
        from cloner.presets import apply_preset

        self._set(job, "re-rendering the edited chains", 0.3)
        assert job.input_stems is not None
        out = apply_preset(preset, job.input_stems, job.sample_rate)
        self._set(job, "writing and measuring", 0.8)
        self._write_outputs(job, out, preset)

    # -- files ----------------------------------------------------------------------------------
    def _write_outputs(self, job: Job, out_stems: Mapping[str, Any], preset: Any) -> None:
        from fxdsp.io import atomic_write, atomic_write_text

        assert job.input_stems is not None and job.reference_stems is not None
        rate = job.sample_rate
        stems = {k: out_stems[k].float().cpu() for k in STEMS}
        for k, x in stems.items():
            _write_wav(job.folder / f"output_{k}.wav", x, rate)
        _write_wav(job.folder / "output.wav", sum(stems.values()), rate)

        def write_zip(tmp: str) -> None:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                for k in STEMS:
                    z.write(job.folder / f"output_{k}.wav", f"{k}.wav")

        atomic_write(job.folder / "stems.zip", write_zip)
        files = {"output": "output.wav", "stems": "stems.zip"}
        files.update({f"output_{k}": f"output_{k}.wav" for k in STEMS})
        if preset is not None:
            atomic_write_text(job.folder / "preset.json", preset.to_json())
            job.preset = preset.to_dict()
            files["preset"] = "preset.json"
        sets = {"input": (job.input_stems, rate), "reference": (job.reference_stems,
                job.reference_rate), "output": (stems, rate)}  # fmt: skip
        job.figures = measure_sets(sets)
        files.update(write_plots(job.folder, sets, job.figures))
        job.files.update(files)
        job.version += 1


# ------------------------------------------------------------------------------------------------
# Measures and plots
# ------------------------------------------------------------------------------------------------
def measure_sets(sets: Mapping[str, tuple[Mapping[str, Any], int]]) -> dict[str, Any]:
    """Per song (``{name: (stems, rate)}``): the mix's integrated loudness (LUFS, for playback
    at matched loudness), sample peak (dBFS), length, and the stereo width of the mix and of
    each stem (side energy over total, :func:`fxdsp.analysis.stereo_width`)."""
    from fxdsp.analysis import stereo_width
    from fxdsp.functional.loudness import loudness

    out: dict[str, Any] = {}
    for name, (stems, rate) in sets.items():
        mix = sum(x.float() for x in stems.values())
        lufs = float(loudness(mix[None].double(), rate)[0])
        peak = float(mix.abs().max())
        widths = {k: float(stereo_width(x[None].double())[0]) for k, x in stems.items()}
        widths["mix"] = float(stereo_width(mix[None].double())[0])
        out[name] = {
            "lufs": lufs if math.isfinite(lufs) else None,
            "peak_dbfs": 20 * math.log10(peak) if peak > 0 else None,
            "seconds": mix.shape[-1] / rate, "width": widths,
        }  # fmt: skip
    return out


_COLOURS = {"input": "0.5", "reference": "tab:orange", "output": "tab:green"}


def write_plots(
    folder: Path,
    sets: Mapping[str, tuple[Mapping[str, Any], int]],
    figures: Mapping[str, Any],
) -> dict[str, str]:
    """``spectrum.png`` (average 1/6-octave spectrum of the mixes), ``loudness.png``
    (momentary loudness over time) and ``width.png`` (the stereo widths per stem and of the mix
    that :func:`measure_sets` gave as ``figures``), written atomically; returns ``{plot: file
    name}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from fxdsp.io import atomic_write
    from mixfx.effects_demo import band_levels, momentary_loudness

    mixes = {name: (sum(x.float() for x in stems.values()), rate)
             for name, (stems, rate) in sets.items()}  # fmt: skip

    def save(fig: Any, name: str) -> str:
        try:
            atomic_write(folder / name, lambda tmp: fig.savefig(tmp, format="png", dpi=80))
        finally:
            plt.close(fig)
        return name

    files = {}
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, (x, rate) in mixes.items():
        ax.semilogx(*band_levels(x[None], rate), label=name, color=_COLOURS.get(name))
    ax.set(xlabel="frequency (Hz)", ylabel="level (dB, 1/6 octave)", title="Average spectrum")
    ax.set_xlim(30, 20000)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    files["spectrum"] = save(fig, "spectrum.png")

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, (x, rate) in mixes.items():
        ax.plot(*momentary_loudness(x[None], rate), label=name, color=_COLOURS.get(name))
    ax.set(xlabel="time (s)", ylabel="LUFS", title="Momentary loudness (400 ms)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    files["loudness"] = save(fig, "loudness.png")

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    width = 0.8 / len(sets)
    for i, name in enumerate(sets):
        vals = [figures[name]["width"][k] for k in (*STEMS, "mix")]
        ax.bar(np.arange(len(STEMS) + 1) + (i - (len(sets) - 1) / 2) * width, vals, width,
               label=name, color=_COLOURS.get(name))  # fmt: skip
    ax.set_xticks(np.arange(len(STEMS) + 1), [*STEMS, "mix"])
    ax.set(ylabel="side energy / total", title="Stereo width")
    ax.legend(fontsize="small")
    fig.tight_layout()
    files["width"] = save(fig, "width.png")
    return files


def _aligned(stems: Mapping[str, Any]) -> dict[str, Any]:
    """Stems padded to one length (a separated mix's are; uploaded stems may differ)."""
    import torch

    length = max(x.shape[-1] for x in stems.values())
    return {k: torch.nn.functional.pad(x, (0, length - x.shape[-1])) for k, x in stems.items()}


def _write_wav(path: Path, audio: Any, rate: int) -> None:
    """``(channels, samples)`` audio as a 32-bit float WAV, written atomically
    (:func:`mixfx.effects_demo.write_wav`)."""
    from mixfx.effects_demo import write_wav

    write_wav(path, audio[None], int(rate))
