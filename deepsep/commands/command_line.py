"""The command line of a run as it was given, for its records (the manifest's training command)."""

from __future__ import annotations

import shlex

import click
from click.core import ParameterSource


def command_line(ctx: click.Context) -> str:
    """The command as typed: the command path, then each option given on the command line in its
    long form, in the command's order; a repeatable option once per value; values quoted for a shell."""
    parts = [ctx.command_path]
    for p in ctx.command.params:
        if p.name is None or ctx.get_parameter_source(p.name) != ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[p.name]
        if isinstance(p, click.Option) and p.is_flag:
            parts.append(p.opts[-1] if value else (p.secondary_opts or [p.opts[-1]])[0])
        else:
            for v in value if p.multiple else [value]:
                parts += [p.opts[-1], shlex.quote(str(v))]
    return " ".join(parts)
