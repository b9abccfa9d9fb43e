"""Atomic file writes: a reader sees the old file or the complete new one, never a partial file.

The content goes to a temporary file beside the destination, named
``.<name>.<host>-<pid>.<random>.part``, which is renamed onto the destination once complete. It
never outlives the write:

- an exception (``KeyboardInterrupt`` included) inside the write removes it;
- a ``SIGTERM`` during the write, in a main thread that leaves ``SIGTERM`` at its default action,
  removes it too, and then the process still ends by ``SIGTERM`` (exit status ``-15``);
- a process that dies without running any code (``SIGKILL``, a power cut, ``SIGTERM`` with the
  write outside the main thread) leaves it behind; the next :func:`atomic_write` of the same
  destination removes it, once the process named in it (on this host) no longer runs.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text"]


class _Terminated(BaseException):
    """Raised by the temporary SIGTERM handler inside :func:`atomic_write`."""


def _host() -> str:
    """This machine's name, reduced to characters that are safe in a file name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:64] or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's running process
        return True
    except OSError:
        return True  # unsure: keep the file
    return True


def _remove_stale(path: Path, host: str) -> None:
    """Remove temporaries of ``path`` left by dead processes of this host (best effort)."""
    prefix = f".{path.name}.{host}-"
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.[^.]+\.part")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _pid_alive(pid):
            try:
                os.unlink(entry.path)
            except OSError:
                pass  # gone already, or not ours to remove


@contextmanager
def _sigterm_raises() -> Iterator[bool]:
    """While inside, turn a default-action SIGTERM into :class:`_Terminated` (main thread only).

    Yields whether this call installed the handler (the outermost of nested writes did).
    """
    installed = False
    previous = None
    if threading.current_thread() is threading.main_thread():
        try:
            previous = signal.getsignal(signal.SIGTERM)
            if previous == signal.SIG_DFL:

                def handler(signum: int, frame: object) -> None:
                    raise _Terminated

                signal.signal(signal.SIGTERM, handler)
                installed = True
        except (ValueError, OSError):  # no signals here (embedded interpreter, ...)
            installed = False
    try:
        yield installed
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def atomic_write(path: str | Path, write: Callable[[str], None], *, mode: int = 0o644) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``.

    An error (or an interrupt, or a ``SIGTERM`` in the main thread) inside ``write`` removes the
    temporary file and leaves any existing ``path`` untouched; temporaries of ``path`` left by
    processes that were killed outright are removed first (see the module docstring).

    Args:
        path: the destination; its folder must exist.
        write: writes the whole content to the path it is given (a string).
        mode: permission bits of the final file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    host = _host()
    _remove_stale(path, host)
    with _sigterm_raises() as outermost:
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(
                dir=path.parent, prefix=f".{path.name}.{host}-{os.getpid()}.", suffix=".part"
            )
            os.close(fd)
            write(tmp)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException as err:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            if isinstance(err, _Terminated) and outermost:
                terminated = True
            else:
                raise
        else:
            terminated = False
    if terminated:  # cleaned up: now end the way SIGTERM's default action does
        os.kill(os.getpid(), signal.SIGTERM)
        raise SystemExit(128 + signal.SIGTERM)  # reached only if the signal is blocked
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
