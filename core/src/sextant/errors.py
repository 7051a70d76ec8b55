"""Typed errors and the exit codes the CLI maps them to.

Every error sextant raises on purpose derives from :class:`SextantError` and carries a message that
says what failed, why, and what to try. The CLI prints that message on stderr and exits with the
error's ``exit_code``; ``--debug`` adds the traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, in one place."""

    OK = 0
    ERROR = 1
    USAGE = 2
    CORRECTNESS_FAILED = 3
    NOTHING_RUNNABLE = 4
    INTERRUPTED = 130


class SextantError(Exception):
    """Base of every error sextant raises deliberately."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message}\n{hint}")


class UsageError(SextantError):
    """The command line or API call itself is wrong (bad option, unknown name)."""

    exit_code = ExitCode.USAGE


class ModelLoadError(SextantError):
    """A model file or reference could not be found, imported or recognised."""


class SampleError(SextantError):
    """Samples are missing, contradict themselves, or do not fit the model."""


class PluginError(SextantError):
    """A plugin is broken: it failed to import, or two plugins claim the same name."""


class MissingPluginError(SextantError):
    """What was asked needs a plugin (or the library a plugin needs) that this environment lacks:
    a package's candidate whose runner came from a distribution not installed here. Not a usage
    error: the command is right, the environment is not. The hint names the install command."""


class StepError(SextantError):
    """One isolated step (export, conversion, run) failed; carries the child's real cause."""


class CorrectnessError(SextantError):
    """Every candidate that ran gave wrong answers."""

    exit_code = ExitCode.CORRECTNESS_FAILED


class NothingRunnableError(SextantError):
    """No candidate could be built or run on this machine."""

    exit_code = ExitCode.NOTHING_RUNNABLE


class PackageError(SextantError):
    """A package folder is missing, unreadable, or from an unknown schema version."""


class Interrupted(SextantError):
    """The user stopped the run (Ctrl-C, or SIGTERM/SIGHUP: :mod:`sextant.stops`); what finished is
    kept. ``signum``: the signal that stopped it, whose exit status (128 + its number) the command
    exits with, as a process that signal had stopped would."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, *, hint: str | None = None, signum: int | None = None) -> None:
        super().__init__(message, hint=hint)
        if signum is not None:
            self.exit_code = 128 + signum  # type: ignore[assignment] - an exit status, as shells report it


class DiskFullError(SextantError):
    """A file system ran out of space (or quota) while sextant wrote to it; nothing was half-written."""


class UnwritableError(SextantError):
    """A folder sextant must write to is read-only (a read-only file system, no permission)."""


class WorkspaceBusyError(SextantError):
    """Another live process is running in the same workspace."""


class UntrustedSourceError(PackageError):
    """Loading a package's candidate would unpickle its files (which runs code they contain), and the
    caller did not opt in (``trust_source=True``, ``--trust-source``)."""


class IncompleteRunWarning(UserWarning):
    """A package's run did not finish (interrupted, or stopped by an error): its selection was made
    among the candidates measured before it stopped. :meth:`sextant.package.Package.best` warns with
    it; ``warnings.simplefilter("error", IncompleteRunWarning)`` turns it into an error."""
