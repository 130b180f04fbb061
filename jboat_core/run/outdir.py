"""The output folder of a run: checked before anything is computed, locked while the run
writes to it, never overwritten by accident.

* ``--out`` must be a folder (or a path jboat can create) under folders only: a file
  there, or under it, is an error at once.
* A lock file ``OUT/.jboat.lock`` (``fcntl`` advisory lock, holding the PID) makes a second
  run on the same folder fail at once, naming the PID that holds it; the lock goes away
  with the process, however it ends.
* A folder holding an earlier run (a checkpoint or ``metrics.json``) is continued only with
  ``--resume`` and replaced only with ``--overwrite``. Temporary files of a write that was
  killed mid-way are removed once the lock is held.
* Nothing is written through a symbolic link planted in the folder: the lock file is
  opened with ``O_NOFOLLOW`` (a link there is refused, naming it: remove it), outputs are
  replaced by rename (``jboat_core.platform.safeio``: a link of an output's name is replaced, its
  target untouched) and ``--overwrite`` removes links, never their targets.
* Nothing is written into a file another name shares (a hard link: a folder copied with
  ``cp -al``, or planted): a lock file with more than one link is replaced by a new
  private file (renamed over its name, under the shared file's lock) before the PID is
  written, and the run's other files are replaced or copied privately before they are
  changed (``jboat_core.platform.safeio.append_private``).
* The lock is released explicitly (``LOCK_UN``) when the run ends, and its descriptor is
  closed in forked children (Jittor's compiler pools), so a second run in the same
  process can take the folder again and a child never holds it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from .checkpoint import HISTORY, LEGACY, NAME
from ..errors import JboatError
from ..platform.safeio import write_atomic
from .guard import leader_pid

LOCK = ".jboat.lock"
OUTPUTS = (NAME, LEGACY, "metrics.json", "loss_curve.png", HISTORY)
LOCK_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
              | getattr(os, "O_CLOEXEC", 0))
_HELD: set[int] = set()  # lock descriptors of this process, closed in forked children


def _close_in_child() -> None:
    for fd in list(_HELD):  # a child's copy only: closing it leaves the parent's lock
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


def _holder(fd: int) -> str:
    """The PID a lock file holds (for messages; ``?`` when it holds something else)."""
    text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "?"


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not replaced since)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _break_hard_link(lock: Path, fd: int) -> None:
    """Replace a lock file that is a hard link to another file (``cp -al``, or planted)
    by a new private file, renamed over the name: the other file is never written.
    Done while holding the shared file's lock, so that two processes never both replace
    it; a live run holding it (on the folder this one was copied from) is named."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise OutputError(f"{lock} is a hard link to another file, locked by the jboat "
                              f"run PID {holder} (a folder copied with cp -al while it "
                              "ran?); jboat never writes into it: wait for that run, or "
                              f"remove the lock file (rm {lock}) and run again") from None
        raise
    try:
        if _names(lock, fd):  # not replaced by another process meanwhile
            write_atomic(lock, b"")
    except OSError as exc:
        raise OutputError(f"{lock} is a hard link to another file and cannot be replaced "
                          f"({exc.strerror or exc}); remove it (rm {lock}) and run "
                          "again") from None
    finally:
        os.close(fd)  # closing releases the shared file's lock


class OutputError(JboatError):
    """An unusable output folder (a file, locked by another run, holding an earlier run)."""


def check_out_path(out: Path) -> None:
    """Refuse an ``--out`` that is a file or lies under a file (before any work)."""
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == out else f"lies under the file {parent}"
            raise OutputError(f"--out {out} {where}; choose a folder")
    probe = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: {probe} is not writable")


class OutputFolder:
    """A locked output folder (a context manager).

    Parameters
    ----------
    out : path
    resume, overwrite : bool
        What to do with an earlier run found there.
    outputs : tuple of str
        The files that make up a run's results (``jboat run``'s by default).
    """

    def __init__(self, out, resume: bool = False, overwrite: bool = False,
                 outputs: tuple[str, ...] = OUTPUTS):
        self.path = Path(out)
        self.resume, self.overwrite = resume, overwrite
        self.outputs = tuple(outputs)
        self._fd: int | None = None

    def __enter__(self) -> "OutputFolder":
        check_out_path(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"--out {self.path}: cannot create this folder "
                              f"({exc.strerror or exc}); choose a folder you can write "
                              "to") from None
        self._lock()
        try:
            for stale in self.path.glob(".*.tmp"):  # left by a write killed mid-way
                try:
                    stale.unlink()  # a link is removed, never followed
                except OSError:
                    pass
            self._check_earlier_run()
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _lock(self) -> None:
        lock = self.path / LOCK
        for _ in range(20):  # a lock file replaced under us (a broken hard link): again
            fd = self._open_lock(lock)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _holder(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(f"--out {self.path} is in use by another jboat run "
                                      f"(PID {holder}); wait for it to finish or choose "
                                      "another folder") from None
                raise
            if _names(lock, fd) and os.fstat(fd).st_nlink == 1:
                break
            os.close(fd)  # replaced or linked since it was opened: open the new one
        else:  # pragma: no cover - another process keeps swapping the file
            raise OutputError(f"{lock} keeps changing under jboat; stop what replaces it")
        try:  # the PID is for messages only: a full disk must not stop the run here
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{leader_pid()}\n".encode(), 0)
        except OSError:
            pass
        self._fd = fd
        _HELD.add(fd)

    @staticmethod
    def _open_lock(lock: Path, private: bool = False) -> int:
        """The lock file's descriptor: never through a link, only a regular file of one
        name (a hard link to another file is replaced by a private file first)."""
        advice = f"jboat never writes through it: remove it (rm {lock}) and run again"
        try:
            fd = os.open(lock, LOCK_FLAGS, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP or os.path.islink(lock):
                raise OutputError(f"{lock} is a symbolic link; {advice}") from None
            raise OutputError(f"cannot open the lock file {lock}: {exc.strerror}; "
                              f"{advice}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise OutputError(f"{lock} is not a regular file; {advice}")
        if st.st_nlink > 1 and not private:  # never written: replaced, the new one opened
            _break_hard_link(lock, fd)
            return OutputFolder._open_lock(lock, private=True)
        return fd  # still linked (re-linked meanwhile): _lock sees it and opens again

    def release(self) -> None:
        """Unlock and close (explicitly: a forked child's copy must not keep the lock)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            _HELD.discard(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    @staticmethod
    def _remove(path: Path) -> None:
        """Remove an earlier output (a link itself, never its target)."""
        try:
            path.unlink()
        except IsADirectoryError:
            raise OutputError(f"--overwrite: {path} is a folder, not a jboat output; move "
                              "it away or choose another --out") from None

    def _check_earlier_run(self) -> None:
        found = [n for n in self.outputs if os.path.lexists(self.path / n)]  # links too
        if not found or self.overwrite:
            if self.overwrite:
                for name in found:
                    self._remove(self.path / name)
            return
        if self.resume and (self.path / NAME).exists():
            return
        if self.resume:
            if LEGACY in found:
                raise OutputError(
                    f"{self.path / LEGACY} is a pickled checkpoint of an older jboat; jboat "
                    "never loads pickles (unpickling can run code). Delete it (and start "
                    "again with --overwrite), or resume with the jboat version that wrote it")
            raise OutputError(
                f"--resume: {self.path} holds an earlier run ({', '.join(found)}) but no "
                f"{NAME} to continue from (checkpoints are written with --checkpoint-every "
                "N); pass --overwrite to replace it")
        raise OutputError(
            f"--out {self.path} holds an earlier run ({', '.join(found)}); pass --resume to "
            "continue it or --overwrite to replace it, or choose another folder")
