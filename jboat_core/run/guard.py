"""The exit status of ``jboat run`` is jboat's, whatever the task module does at exit.

A task module runs in the ``jboat run`` process, and its code can end that process at
exit: an ``atexit`` handler calling ``os._exit(0)`` turned a failed run into exit code 0.
So the command runs in a forked child and the process the user started waits for it:

* the child reports its exit code through a pipe before any exit handler runs, and the
  parent exits with that code (the child's own end, after its handlers, only counts
  when it reported nothing: a child killed outright makes the parent end by the same
  signal);
* SIGINT, SIGTERM and SIGHUP sent to the parent are forwarded to the child (a signal
  the terminal sends to the whole process group reaches the child itself, and is not
  sent twice); the child is killed if the parent dies (``PR_SET_PDEATHSIG``);
* the output folder's lock names the parent's PID, the one the user sees.

Only on Linux, and not under ``mpirun`` (a rank must stay the process mpirun started):
there the command runs in the process itself, as before.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

#: The signals forwarded from the parent to the child.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_SI_KERNEL = 0x80  # siginfo.si_code of a signal the kernel sent (a terminal's Ctrl-C)
_PR_SET_PDEATHSIG = 1
_LEADER: int | None = None


def leader_pid() -> int:
    """The PID of the process the user started (the parent when guarded)."""
    return _LEADER if _LEADER is not None else os.getpid()


def can_guard() -> bool:
    """Whether this process can run a command in a guarded child (Linux, not an MPI
    rank, not already a guarded child)."""
    from ..platform.parallel import launched_by_mpirun

    return (sys.platform.startswith("linux") and hasattr(signal, "sigwaitinfo")
            and _LEADER is None and not launched_by_mpirun())


def guarded(work: Callable[[], int]) -> int:
    """``work()`` in a forked child; the exit code it reports (see the module docstring).
    In the child this returns ``work()``'s code after reporting it; in the parent, the
    code to exit with (or the parent ends by the signal that killed the child)."""
    global _LEADER
    if not can_guard():
        return work()
    sys.stdout.flush()
    sys.stderr.flush()
    watched = {*FORWARDED, signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    read, write = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: the command itself
        os.close(read)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        _LEADER = parent
        _die_with(parent)
        return _report(work, write)
    os.close(write)
    try:
        status = _wait(pid)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return _outcome(status, _read_all(read))


def _die_with(parent: int) -> None:
    """Be killed when the parent dies (Linux ``prctl``); gone already: end now."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl
        pass
    if os.getppid() != parent:
        os._exit(1)


def _report(work: Callable[[], int], fd: int) -> int:
    """Run ``work`` and write its exit code to ``fd`` before any exit handler runs."""
    code = 1
    try:
        code = work()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    finally:  # an unexpected exception: Python's own code for it, 1
        try:
            os.write(fd, f"{code}\n".encode())
            os.close(fd)
        except OSError:
            pass
    return code


def _wait(pid: int) -> int:
    """Wait for the child, forwarding the signals a process sent to this one."""
    while True:
        info = signal.sigwaitinfo({*FORWARDED, signal.SIGCHLD})
        if info.si_signo == signal.SIGCHLD:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return status
            continue
        if info.si_code != _SI_KERNEL:  # kill(), not the terminal (the child has it)
            try:
                os.kill(pid, info.si_signo)
            except ProcessLookupError:
                pass


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 64)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _outcome(status: int, reported: bytes) -> int:
    """The parent's exit code: the one reported; else the child's end (a signal that
    killed it ends the parent the same way)."""
    text = reported.decode("ascii", "replace").strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        sys.stdout.flush()
        sys.stderr.flush()
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those cannot be handled anyway
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
        return 128 + sig  # pragma: no cover - not reached for a deadly signal
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
