"""What every part of a checkpoint shares: its error, one-line failures naming the file
and the key (with values shown short), and opening a file only when it is a regular one
(never a FIFO, a device or a link). No Jittor, no NumPy."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from ..errors import JboatError

AFRESH = "delete it or start afresh with --overwrite"


class CheckpointError(JboatError):
    """A checkpoint that cannot be used: damaged, of another format or schema, of another
    problem, or not matching the live variables. The message names the file, the key and
    what to do."""


def fail(path, key: str, what: str, todo: str = AFRESH) -> CheckpointError:
    """``checkpoint PATH: KEY: WHAT; TODO`` as a ``CheckpointError``."""
    return CheckpointError(f"checkpoint {path}: {key}: {what}; {todo}")


class _Absent:
    """The value of a key one of two compared tables lacks."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


def short(value) -> str:
    """``value`` as compact JSON for a one-line message, cut at 120 characters."""
    if isinstance(value, _Absent):
        return "(absent)"
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


_KIND_NAMES = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISLNK, "a symbolic link"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def open_regular(path: Path, what: str = "checkpoint"):
    """A binary file object of ``path``, which must be a regular file: checked with
    ``lstat`` before opening and ``fstat`` after (opened with ``O_NONBLOCK | O_NOFOLLOW``,
    so a FIFO or a link planted there is never waited on or followed)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"{what} {path}: cannot be read ({exc.strerror})") from None
    kind = next((name for test, name in _KIND_NAMES if test(mode)), "not a regular file")
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{what} {path}: is {kind}, not a regular file; remove it "
                              f"(jboat reads only files it wrote) or start afresh with "
                              "--overwrite")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise CheckpointError(f"{what} {path}: cannot be read ({exc.strerror}); check "
                              "its permissions") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between lstat and open
        os.close(fd)
        raise CheckpointError(f"{what} {path}: is not a regular file; remove it")
    return os.fdopen(fd, "rb")
