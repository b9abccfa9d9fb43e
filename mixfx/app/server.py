"""The web page of ``mixfx app``: a small FastAPI server and one static page.

Routes (JSON unless said otherwise):

- ``GET /``: the page (``static/index.html`` with ``app.js`` and ``app.css``);
- ``GET /api/config``: the methods, the upload limit, whether mixes can be separated;
- ``POST /api/jobs`` (multipart: ``input`` and ``reference`` files, ``reference_b`` files
  optional, ``method``, ``refine``, ``blend``, ``fxnorm``): checks the uploads and queues the
  transfer; answers ``{"id": ...}``, or ``400 {"error": message}``;
- ``GET /api/jobs/{id}``: the job's state, progress, files, figures and preset;
- ``GET /api/jobs/{id}/files/{name}``: one of its files (WAV, ZIP, JSON, PNG);
- ``POST /api/jobs/{id}/preset`` (JSON: a preset): re-renders the output with the edited chains;
- ``POST /api/jobs/{id}/close``: removes the job and its files (the page sends it when left).

Request handlers are plain functions, which the server runs on its thread pool, and the
transfers run on the engine's own worker thread: a slow transfer never holds up the event loop,
so other pages (and this page's polling) stay answered while it runs.
"""

from __future__ import annotations

import json
import math
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from mixfx.app.engine import METHODS, AppError, Engine, Settings

__all__ = ["STATIC", "create_app"]

STATIC = Path(__file__).parent / "static"
#: Upload bytes allowed per second of the longest accepted file: 192 kHz stereo 32-bit float.
_BYTES_PER_SECOND = 192000 * 2 * 4
_MEDIA = {".wav": "audio/wav", ".zip": "application/zip", ".json": "application/json",
          ".png": "image/png"}  # fmt: skip


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(engine: Engine) -> FastAPI:
    """The FastAPI application around ``engine`` (closed when the server stops)."""

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        try:
            yield
        finally:
            engine.close()

    app = FastAPI(title="mixfx", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ())[1:]) or "request"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return _error("; ".join(parts) or "bad request")

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        return {
            "methods": list(METHODS), "max_seconds": engine.max_seconds,
            "separator_weights": engine.separator_weights is not None,
            "cloner": engine.cloner_name, "controller": engine.controller_name,
        }  # fmt: skip

    @app.post("/api/jobs")
    def submit(
        input: Annotated[list[UploadFile], File()],
        reference: Annotated[list[UploadFile], File()],
        reference_b: Annotated[list[UploadFile] | None, File()] = None,
        method: Annotated[str, Form()] = "cloner",
        refine: Annotated[int, Form()] = 20,
        blend: Annotated[float | None, Form()] = None,
        fxnorm: Annotated[bool, Form()] = False,
    ) -> Any:
        job_id, folder = engine.new_folder()
        try:
            limit = int(engine.max_seconds * _BYTES_PER_SECOND) + (1 << 20)
            saved = {
                key: _save(files or [], folder / "uploads" / key, limit)
                for key, files in (("input", input), ("reference", reference),
                                   ("reference_b", reference_b))
            }  # fmt: skip
            if blend is not None and not math.isfinite(blend):
                raise AppError("the blend must be a number between 0 and 1")
            settings = Settings(method=method, refine=refine, fxnorm=fxnorm,
                                blend=blend if saved["reference_b"] else None)  # fmt: skip
            engine.submit(job_id, folder, settings, saved["input"], saved["reference"],
                          saved["reference_b"])  # fmt: skip
        except AppError as err:
            engine.discard(job_id, folder)
            return _error(str(err))
        return {"id": job_id}

    @app.get("/api/jobs/{job_id}")
    def status(job_id: str) -> Any:
        try:
            return engine.status(job_id)
        except KeyError:
            return _error(f"no job {job_id} (finished jobs are removed after a while)", 404)

    @app.get("/api/jobs/{job_id}/files/{name}")
    def file(job_id: str, name: str) -> Any:
        try:
            job = engine.get(job_id)
        except KeyError:
            return _error(f"no job {job_id}", 404)
        if name not in job.files.values():
            return _error(f"job {job_id} has no file {name}", 404)
        path = job.folder / name
        return FileResponse(path, media_type=_MEDIA.get(path.suffix), filename=name,
                            headers={"Cache-Control": "no-store"})  # fmt: skip

    @app.post("/api/jobs/{job_id}/preset")
    async def edit(job_id: str, request: Request) -> Any:
        try:
            preset = json.loads(await request.body())
        except ValueError as err:
            return _error(f"the preset is not JSON: {err}")
        if not isinstance(preset, dict):
            return _error("the preset must be a JSON object")
        try:
            engine.rerender(job_id, preset)
        except KeyError:
            return _error(f"no job {job_id}", 404)
        except AppError as err:
            return _error(str(err))
        return {"id": job_id}

    @app.post("/api/jobs/{job_id}/close")
    def close(job_id: str) -> dict[str, bool]:
        engine.discard(job_id)
        return {"closed": True}

    return app


def _save(files: list[Any], folder: Path, limit: int) -> list[tuple[str, Path]]:
    """The uploads of one field written to ``folder``: ``(uploaded name, path)`` each (the
    name reduced to its last part; files without a name are skipped, as browsers send an empty
    part for an empty file field). A file over ``limit`` bytes is refused (:class:`AppError`)
    as soon as it passes it."""
    out = []
    for k, upload in enumerate(files):
        name = Path(upload.filename or "").name
        if not name:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{k}{Path(name).suffix.lower()[:8]}"
        size = 0
        with path.open("wb") as f:
            while chunk := upload.file.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise AppError(
                        f"{name} is larger than {limit / 1e6:.0f} MB, more than the longest "
                        "accepted upload can take"
                    )
                f.write(chunk)
        out.append((name, path))
    return out
