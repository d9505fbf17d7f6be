"""The ``ichpipe`` command line: a thin click shell over ``pipeline`` functions.

Stage ``cli``. Each command lives in its own module of this package,
``<command>_cmd`` (``run_cmd``, ``inspect_cmd``, ``measure_cmd``, ...; a module
named like the command would shadow the job modules' names and, for
``inspect``, the standard library), and is registered here. A command parses
its options into one frozen options object, calls the job (:mod:`ichpipe.pipeline.jobs`
or the stage that owns it) and prints; heavy imports happen inside the
commands, so ``ichpipe --help`` stays fast. Shared helpers (logging with
patient identifiers masked, ``--config``, JSON output, errors to exit
statuses) are in :mod:`~ichpipe.pipeline.cli._common`.
Exit status: 0 success, 1 the job failed (reason on stderr), 2 bad usage or config.
"""

from __future__ import annotations

import os

import click

from ichpipe import __version__
from ichpipe.pipeline.cli._common import setup_logging

__all__ = ["GLOBAL_FLAGS", "OPENMP_DEFAULTS", "IchpipeGroup", "cli", "main"]

#: Flags of the group that may also be written after the subcommand (``ichpipe run -v ...``).
GLOBAL_FLAGS = ("-v", "--verbose", "--debug", "--log-phi")


class IchpipeGroup(click.Group):
    """The ``ichpipe`` group: its flags are accepted after the subcommand too.

    ``ichpipe run --study X -v`` is read as ``ichpipe -v run --study X``; the
    flags are moved in front of the subcommand before parsing (never past a
    ``--``). No subcommand has options with these names.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Move :data:`GLOBAL_FLAGS` found after the subcommand in front of it, then parse."""
        args = list(args)
        command = next((i for i, a in enumerate(args) if a in self.commands), None)
        if command is not None:
            tail = args[command:]
            stop = tail.index("--") if "--" in tail else len(tail)
            moved = [a for a in tail[:stop] if a in GLOBAL_FLAGS]
            if moved:
                kept = [a for a in tail[:stop] if a not in GLOBAL_FLAGS] + tail[stop:]
                args = args[:command] + moved + kept
        return super().parse_args(ctx, args)


@click.group(cls=IchpipeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ichpipe")
@click.option("-v", "--verbose", is_flag=True,
              help="Log what is done (info level) to stderr; stage progress is shown anyway.")
@click.option("--debug", is_flag=True, help="Log everything and print tracebacks on errors.")
@click.option("--log-phi", is_flag=True,
              help="Let logs and error messages show patient names, IDs, birth dates and accession numbers"
                   " (masked by default).")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, debug: bool, log_phi: bool) -> None:
    """ichpipe: intracerebral hemorrhage pipeline for non-contrast head CT."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["log_phi"] = log_phi
    setup_logging(verbose=verbose, debug=debug, log_phi=log_phi)


def _register() -> None:
    # Imported here so that `ichpipe --help` stays fast and modules stay independent.
    from ichpipe.pipeline.cli import (
        batch_cmd,
        evaluate_cmd,
        features_cmd,
        inspect_cmd,
        measure_cmd,
        phantom_cmd,
        predict_cmd,
        run_cmd,
        timeline_cmd,
        train_cmd,
        train_predictor_cmd,
    )

    cli.add_command(inspect_cmd.inspect)
    cli.add_command(measure_cmd.measure)
    cli.add_command(phantom_cmd.phantom)
    cli.add_command(run_cmd.run)
    cli.add_command(timeline_cmd.timeline)
    cli.add_command(timeline_cmd.expansion)
    cli.add_command(train_cmd.train)
    cli.add_command(evaluate_cmd.evaluate)
    train_cmd.train.add_command(train_predictor_cmd.predictor)
    cli.add_command(features_cmd.features)
    cli.add_command(predict_cmd.predict_expansion)
    cli.add_command(batch_cmd.batch)
    cli.add_command(batch_cmd.watch)


_register()


#: OpenMP settings made before torch is first imported (a value already in the environment wins).
#: ``PASSIVE``: idle OpenMP threads sleep instead of spinning. On a machine whose cores are shared
#: with other jobs, spinning threads make a network run many times slower (BENCHMARKS.md, issue 17).
OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}


def main() -> None:
    """Console-script entry point."""
    for name, value in OPENMP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    cli(prog_name="ichpipe")
