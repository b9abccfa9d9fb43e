"""The ``mixfx`` commands, one module each.

Every module has ``NAME`` (the command's name), ``HELP`` (its line in ``mixfx --help``),
``DESCRIPTION``, ``configure(parser)`` (its options) and ``run(args)`` (the exit code; a
:class:`~mixfx.commands.common.CLIError` for a one-line error). Heavy imports (torch, the
libraries, optional packages) happen inside ``run``.
"""
