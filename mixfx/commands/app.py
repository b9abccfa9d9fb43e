"""``mixfx app``: the local web page (:mod:`mixfx.app`) for uploading, listening and comparing.

A small FastAPI server (``uvicorn``) on ``--host`` (default ``127.0.0.1``, this machine only)
and ``--port`` (default 7860; 0 picks a free one). Uploads and outputs live in a temporary
folder that is removed when the server stops. Needs the ``app`` extra (fastapi, uvicorn,
python-multipart) and the ``io`` and ``plot`` extras.
"""

from __future__ import annotations

import argparse

from mixfx.commands.common import CLIError, check_device, number_in_range, require

__all__ = ["DESCRIPTION", "HELP", "NAME", "configure", "run"]

NAME = "app"
HELP = "serve the web page: upload a song and a reference, listen A/B, compare, download"
DESCRIPTION = (
    "Serve a local web page where a song (a mix or four stems) is converted to the mixing "
    "style of a reference with the shipped models: listen to input, reference and output "
    "(A/B at the same position, optionally at matched loudness), see their spectra, loudness "
    "and stereo width, edit the parametric preset and re-render, download the results."
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the app's options to ``parser``."""
    p = parser
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument(
        "--port", type=number_in_range(int, 0, 65535, "port"), default=7860,
        help="port (default 7860; 0: a free one, printed)",
    )  # fmt: skip
    p.add_argument(
        "--max-seconds", type=number_in_range(float, 1.0, 36000.0, "seconds"), default=600.0,
        help="the longest accepted upload, per file (default 600)",
    )  # fmt: skip
    p.add_argument(
        "--separator-weights", metavar="PATH", default=None,
        help="Demucs weights for mix uploads (default: the torch hub cache, if it has them)",
    )  # fmt: skip
    p.add_argument("--separator", default="htdemucs", help="the Demucs model name")
    p.add_argument("--cloner", metavar="PATH|NAME", default="default", help="the cloner")
    p.add_argument("--controller", metavar="PATH|NAME", default="default",
                   help="the parametric controller")  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument(
        "--keep-minutes", type=number_in_range(float, 1.0, 10080.0, "minutes"), default=60.0,
        help="remove a finished job nobody has looked at for this long (default 60)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    for module, extra in (("fastapi", "app"), ("uvicorn", "app"), ("python_multipart", "app"),
                          ("soundfile", "io"), ("matplotlib", "plot")):  # fmt: skip
        require(module, extra, "mixfx app")
    import socket

    import uvicorn

    from mixfx.app.engine import Engine
    from mixfx.app.server import create_app

    device = check_device(args.device)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        # Listen before the address is printed: a client that connects at once waits in the
        # backlog until uvicorn accepts, where a bound-only socket refuses it.
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {err.strerror}") from None
    host, port = sock.getsockname()[:2]
    engine = Engine(
        max_seconds=args.max_seconds, separator_weights=args.separator_weights,
        separator=args.separator, cloner=args.cloner, controller=args.controller,
        device=str(device), keep_minutes=args.keep_minutes,
    )  # fmt: skip
    app = create_app(engine)
    shown = f"[{host}]" if ":" in host else host
    print(f"mixfx app: serving http://{shown}:{port}/ (Ctrl+C stops; files in {engine.root})",
          flush=True)  # fmt: skip
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        engine.close()
        sock.close()
    return 0
