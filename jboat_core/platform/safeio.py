"""Files written into an output folder, never through a link planted there.

Every output (``metrics.json``, ``loss_curve.png``, ``compare.json``...) is written to a
new temporary file of a random name in the same folder, created exclusively
(``O_CREAT | O_EXCL | O_NOFOLLOW``: it cannot be an existing file or a link), flushed and
fsynced, then renamed over the output's name. A rename replaces the directory entry
itself: a file *or a symbolic link* of that name is replaced, the link's target (dangling
or not, inside or outside the folder) is never opened, written or created. The folder is
fsynced after the rename. A failed or interrupted write removes its temporary file and
leaves the previous output intact.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "fsync_dir", "write_atomic"]

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
