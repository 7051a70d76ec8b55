"""One line that says why a step or candidate failed: the innermost cause, not a wrapper's.

Libraries wrap errors: ``raise X(...) from inner``, an error raised while handling another, or an
error that quotes the one it wraps in its own text (TorchScript's "The following operation failed
in the TorchScript interpreter." ends with ``builtins.RuntimeError: <the real message>``). The
record's traceback keeps the whole chain; the reason is the one line a user acts on.
"""

from __future__ import annotations

import re

from sextant.errors import SextantError

#: a line of an error's text that names another error: ``builtins.RuntimeError: message``
_QUOTED = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?([A-Za-z_]\w*(?:Error|Exception)): (\S.*)$")


def innermost(exc: BaseException) -> BaseException:
    """The last exception in ``exc``'s chain of causes (``from``) and contexts (raised while
    handling another); sextant's own errors end the walk, as their text is written for users."""
    seen = {id(exc)}
    while not isinstance(exc, SextantError):
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        exc = inner
    return exc


def one_line(exc: BaseException) -> str:
    """``Type: message`` of the innermost cause, on one line (see the module doc). sextant's own
    errors are kept whole."""
    if isinstance(exc, SextantError):
        return f"{type(exc).__name__}: {exc}".strip()
    inner = innermost(exc)
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    if not lines:
        return type(inner).__name__
    for line in reversed(lines[1:]):
        quoted = _QUOTED.match(line)
        if quoted:
            return f"{quoted.group(1)}: {quoted.group(2)}"
    return f"{type(inner).__name__}: {lines[0]}"


#: what a failed allocation says: Python's MemoryError (numpy: "Unable to allocate ..."), C++'s
#: std::bad_alloc, CUDA's and PyTorch's "out of memory", oneDNN's "could not create a primitive",
#: the C library's ENOMEM ("Cannot allocate memory")
_OUT_OF_MEMORY = re.compile(
    r"MemoryError|bad_alloc|out of memory|OutOfMemory|could not create a primitive|"
    r"(?:unable|failed|cannot|could not) (?:to )?allocate|allocation fail",
    re.IGNORECASE,
)


def out_of_memory(text: str | None) -> bool:
    """Whether an error's text (or a crashed child's log) says that memory ran out."""
    return bool(text) and _OUT_OF_MEMORY.search(text) is not None
