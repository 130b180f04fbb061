"""SIGTERM and SIGHUP handled like Ctrl-C, and Ctrl-C given back after Jittor's import.

``timeout``, ``kill``, SLURM, Docker and a closed terminal stop a process with SIGTERM or
SIGHUP, whose default action ends it at once: nothing in Python runs. Inside
``terminate_as_exception()`` these signals raise ``Terminated`` in the main thread instead
(a ``BaseException``, like ``KeyboardInterrupt``, so ``except Exception`` in a task module
does not swallow it), and ``jboat run`` records why it stopped. A signal the program
ignores (``nohup`` ignores SIGHUP) or handles itself is left alone.

Importing Jittor installs a C handler that ends the process on SIGINT ("Caught SIGINT,
quick exit"), even in a process started with SIGINT ignored (a ``&`` job of a script).
``after_jittor_import()`` puts back the disposition Python records for SIGINT:
``KeyboardInterrupt``, or ignored for such a job.

A ``Terminated`` that code on its way swallows (a bare ``except:``, e.g. in Jittor's
import) is raised again at the next ``raise_pending()`` (``jboat run`` calls it after
Jittor's import and at each iteration): a run never goes on as if the signal had not come.

Once a signal is taken over, a SIGCHLD handler installed from C (Jittor's, which quits
with exit code 1 and "Maybe out of memory" when a child dies of a signal: a subprocess
Python kills while the exception unwinds, during Jittor's import) gets the default
action back, so the process ends as terminated (exit code 128 + the signal's number).

A child forked while the handlers are installed (Jittor's compiler pool) gets the default
action back at once: ``multiprocessing`` ends its workers with SIGTERM, and a worker
blocked in a lock would otherwise never run the handler nor die, and its parent would
wait for it forever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = ["TERMINATING", "Terminated", "after_jittor_import", "raise_pending",
           "terminate_as_exception"]

#: The signals ``terminate_as_exception`` turns into ``Terminated``.
TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                    if hasattr(signal, name))


class Terminated(BaseException):
    """The process received SIGTERM or SIGHUP (raised in the main thread).

    Attributes
    ----------
    signum : int
        The signal's number.
    note : str
        Where the run recorded its results (set by ``jboat run``; may be empty).
    """

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.note = ""
        super().__init__(f"received {self.name}")

    @property
    def name(self) -> str:
        """The signal's name (``SIGTERM``)."""
        try:
            return signal.Signals(self.signum).name
        except ValueError:  # pragma: no cover
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


#: The handlers ``terminate_as_exception`` installed, by signal (reset in forked children).
_INSTALLED: dict[int, object] = {}


def _default_in_child() -> None:
    for signum, handler in list(_INSTALLED.items()):
        try:
            if signal.getsignal(signum) is handler:
                signal.signal(signum, signal.SIG_DFL)
        except ValueError:  # forked from another thread: Python cannot change handlers
            pass
    _INSTALLED.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_default_in_child)


def _children_may_die() -> None:
    """Give SIGCHLD its default action back when it is handled from C (Jittor's handler,
    meant for its data-loader workers, ends the process with "Caught SIGCHLD. Maybe out
    of memory" and exit code 1 when a child dies of a signal): the process is stopping,
    and the children stopped with it (a subprocess Python kills on the way out, Jittor's
    compiler pool) must not turn SIGTERM into another ending. A handler set from Python
    is left alone."""
    # Python's own record says None (or, for a handler installed after its start, still
    # SIG_DFL): either way no Python handler, so the default is set again, at C level too
    if hasattr(signal, "SIGCHLD") and signal.getsignal(signal.SIGCHLD) in (None,
                                                                          signal.SIG_DFL):
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        except (ValueError, OSError):  # pragma: no cover - not the main thread
            pass


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_exception(signums: tuple[int, ...] = TERMINATING) -> Iterator[None]:
    """Within the block, ``signums`` raise ``Terminated`` in the main thread.

    Only signals at their default action are taken over (ignored or handled ones stay as
    they are); the previous handlers come back when the block ends. A further signal
    while the first is being handled (results being written) is ignored. Outside the main
    thread nothing changes (Python delivers signals to the main thread only).
    """
    if not _in_main_thread():
        yield
        return
    raised = _PENDING
    raised.clear()

    def handler(signum, frame):  # noqa: ARG001 - the signal module's signature
        if raised:  # the first one is being handled: let it finish writing
            return
        raised.append(signum)
        _children_may_die()
        raise Terminated(signum)

    previous = {}
    for signum in signums:
        if signal.getsignal(signum) is signal.SIG_DFL:
            previous[signum] = signal.signal(signum, handler)
            _INSTALLED[signum] = handler
    hook = sys.unraisablehook

    def quiet_terminated(unraisable):
        """A ``Terminated`` raised where Python can only ignore it (a callback run at
        fork, a finaliser) is not printed: it stays pending and ``raise_pending`` raises
        it again at the next safe point."""
        if not isinstance(unraisable.exc_value, Terminated):
            hook(unraisable)

    sys.unraisablehook = quiet_terminated
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for signum, old in previous.items():
            signal.signal(signum, old)
            _INSTALLED.pop(signum, None)
        raised.clear()


#: The signal raised as ``Terminated`` in the current ``terminate_as_exception`` block.
_PENDING: list[int] = []


def raise_pending() -> None:
    """Raise ``Terminated`` again for a signal already raised in this block whose
    exception was swallowed on its way (a bare ``except:`` in Jittor's import or in a
    task module): the run stops as terminated instead of going on. Call it at points
    where nothing is being unwound (after Jittor's import, at each iteration)."""
    if _PENDING:
        raise Terminated(_PENDING[0])


def after_jittor_import() -> None:
    """Put back the SIGINT disposition Python records, which Jittor's import replaced
    with a handler that quits at once: ``KeyboardInterrupt`` (Python's default), or
    ignored in a process started with SIGINT ignored. Call it in the main thread right
    after ``import jittor`` (elsewhere it does nothing)."""
    if not _in_main_thread():
        return
    current = signal.getsignal(signal.SIGINT)
    if current is not None:  # None: a handler not installed from Python; leave it
        signal.signal(signal.SIGINT, current)
