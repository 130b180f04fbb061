"""Files written into an output folder, never through a link planted there.

Every output (``metrics.json``, ``loss_curve.png``, ``compare.json``...) is written to a
new temporary file of a random name in the same folder, created exclusively
(``O_CREAT | O_EXCL | O_NOFOLLOW``: it cannot be an existing file or a link), flushed and
fsynced, then renamed over the output's name. A rename replaces the directory entry
itself: a file *or a symbolic link* of that name is replaced, the link's target (dangling
or not, inside or outside the folder) is never opened, written or created. The folder is
fsynced after the rename. A failed or interrupted write removes its temporary file and
leaves the previous output intact.

A file that is appended to (a run's history) is never changed in place while another
name shares it (a hard link: a folder copied with ``cp -al``): ``append_private``
first replaces it with a private copy, renamed over the name, so the other folder keeps
its file as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["append_private", "atomic_file", "fsync_dir", "write_atomic"]

#: Flags of a temporary output file: new, never a link, not inherited by programs run.
CREATE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                | getattr(os, "O_CLOEXEC", 0))


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new, exclusively created ``.NAME.RANDOM.tmp`` next to ``path`` (fd, path)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        try:
            return os.open(tmp, CREATE_FLAGS, 0o644), tmp
        except FileExistsError:  # a name taken (astronomically unlikely): draw another
            continue
    raise FileExistsError(f"cannot create a temporary file next to {path}")


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the platform allows."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file object whose contents replace ``path`` when the block ends.

    Parameters
    ----------
    path : path
        The output; a file or a symbolic link there is replaced (a link's target is
        never touched).

    Yields
    ------
    file
        Write the contents to it; on an exception nothing is replaced and the temporary
        file is removed.
    """
    path = Path(path)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see ``atomic_file``)."""
    with atomic_file(path) as fh:
        fh.write(data)


#: Flags of a file appended to: never through a link, not inherited by programs run.
APPEND_FLAGS = (os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
                | getattr(os, "O_CLOEXEC", 0))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def append_private(path: str | Path, data: bytes) -> None:
    """Append ``data`` to the regular file ``path`` (created when missing) and fsync it,
    never writing into a file another name shares: with more than one hard link, the
    file's contents plus ``data`` are written to a new file renamed over ``path`` (the
    other names keep the old contents).

    Raises
    ------
    OSError
        ``path`` is a link, not a regular file, or cannot be written.
    """
    path = Path(path)
    try:
        fd = os.open(path, APPEND_FLAGS)
    except FileNotFoundError:
        write_atomic(path, data)
        return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        if st.st_nlink == 1:
            _write_all(fd, data)
            os.fsync(fd)
            return
    finally:
        os.close(fd)
    write_atomic(path, _read_regular(path) + data)  # shared: a private copy replaces it


def _read_regular(path: Path) -> bytes:
    """The bytes of the regular file ``path`` (never through a link)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)
