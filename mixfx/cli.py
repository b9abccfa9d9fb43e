"""The ``mixfx`` command line: one module per command in :mod:`mixfx.commands`.

Commands:
    ``mixfx demo``: the demo (:mod:`mixfx.demo`): the bundled multitrack example converted to
    the mixing style of the bundled reference by the shipped models, measured against the
    known target, written to ``out/demo/`` (needs the ``io`` and ``plot`` extras).
    ``mixfx app``: the local web page (:mod:`mixfx.app`): upload a song and a reference,
    listen A/B, compare plots, edit the preset, download (needs the ``app`` extra).
    ``mixfx effects-demo``: a synthesized music example through a chain of fxdsp effects
    (:mod:`mixfx.effects_demo`), written to ``out/effects-demo/``.
    ``mixfx version``: the versions of mixfx, torch and Python (also ``mixfx --version``).
    ``mixfx fxnorm-stats DATA_DIR -o stats.json``: FX-normalization statistics of a multitrack
    folder (:mod:`mixfx.commands.fxnorm_stats`).
    ``mixfx corpus build``: render the offline multitrack corpus from Debian-packaged MIDI songs
    with fluidsynth (:mod:`fxdata.corpus`; needs the ``data`` extra and ``fluidsynth``).
    ``mixfx corpus pack DATA --out PACK``: a compact int16 segment pack of a dataset
    (:mod:`fxdata.pack`).
    ``mixfx train-encoder --data DIR --out RUN``: train the audio-effects encoder
    (:mod:`fxencoder.training`; needs the ``train`` extra).
    ``mixfx eval-encoder --encoder PATH --data DIR --out OUT``: the encoder's disentanglement
    and style retrieval on held-out songs (:mod:`fxencoder.evaluation`).
    ``mixfx train-cloner --data DIR --out RUN --encoder PATH``: train the style-transfer
    network (:mod:`cloner.training`).
    ``mixfx train-params --data DIR --out RUN --encoder PATH``: train the parameter controller
    of parametric style transfer (:mod:`cloner.parametric_training`).
    ``mixfx eval-transfer --cloner PATH --data DIR --out OUT``: style transfer on held-out
    songs against input unchanged and the naive match EQ (:mod:`cloner.evaluation`).
    ``mixfx transfer INPUT REFERENCE -o OUT.wav``: convert a mix or a folder of stems to the
    mixing style of a reference (:mod:`cloner.inference`; a mix is separated with Demucs).

Bad arguments exit with 2 and argparse's usage message; a problem while running (bad input, a
missing optional package, an unwritable output) is one line ``mixfx COMMAND: error: ...`` on
stderr and exit code 1, never a traceback. Warnings (e.g. a skipped file) are one line each,
``mixfx COMMAND: warning: ...``. Optional packages (soundfile, matplotlib, tqdm) and torch are
imported only inside the command that needs them, so ``mixfx --help`` is quick.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any, TextIO

from mixfx.commands import (
    app,
    corpus,
    demo,
    effects_demo,
    eval_encoder,
    eval_transfer,
    fxnorm_stats,
    train_cloner,
    train_encoder,
    train_params,
    transfer,
    version,
)
from mixfx.commands.common import PROG, CLIError

__all__ = ["COMMANDS", "CLIError", "build_parser", "main"]

#: The command modules, in the order ``mixfx --help`` lists them. Each has ``NAME``, ``HELP``,
#: ``DESCRIPTION``, ``configure(parser)`` and ``run(args) -> exit code``.
COMMANDS: tuple[ModuleType, ...] = (
    demo,
    app,
    effects_demo,
    fxnorm_stats,
    corpus,
    train_encoder,
    train_cloner,
    train_params,
    eval_encoder,
    eval_transfer,
    transfer,
    version,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``mixfx`` argument parser with all its commands."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Music mixing style transfer with batched, differentiable audio effects.",
    )
    parser.add_argument("--version", action="version", version=version.version_line())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.DESCRIPTION)
        module.configure(command)
        command.set_defaults(run=module.run)
    return parser


def _one_line_warnings(command: str) -> Any:
    """A ``warnings.showwarning`` that prints ``mixfx COMMAND: warning: message`` to stderr."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        print(f"{PROG} {command}: warning: {message}", file=file or sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mixfx`` command line.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 1 on an error while running, 2 on bad arguments, 130 on
        an interrupt.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits on --help, --version and bad arguments
        return exit_.code if isinstance(exit_.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        names = ", ".join(module.NAME for module in COMMANDS)
        print(f"\n{PROG}: error: a command is required ({names})", file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _one_line_warnings(args.command)
        try:
            return args.run(args)
        except (CLIError, ValueError, OSError) as err:
            # CLIError: a problem the command found; ValueError: bad input rejected by the
            # libraries (their messages name the problem); OSError: a file or folder that
            # cannot be read or written.
            print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
