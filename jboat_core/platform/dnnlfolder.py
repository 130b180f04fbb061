"""Jittor's oneDNN folder (``<Jittor home>/.cache/jittor/mkl/dnnl_lnx_2.2.0_cpu_gomp``),
laid out with links to this environment's oneDNN, never through a link and never
waiting forever.

* **No write through a link**: ``mkl``, the folder and its ``lib`` are opened one by one
  with ``O_NOFOLLOW | O_DIRECTORY`` and every link is made relative to the opened folder
  (``dir_fd``): a symbolic link planted at any of them is refused, naming it, and
  nothing is created in its target. (Jittor's home and ``.cache/jittor`` above them are
  the user's to place.)
* **A bounded wait**: the set-up lock ``mkl/.jboat-onednn.lock`` is waited for at most
  ``JBOAT_ONEDNN_WAIT`` seconds (default 30; a lay-out holds it for milliseconds), with
  one line on stderr after a second naming the lock and the process holding it.
* **Nothing to write, nothing needed**: where the folder cannot be written (a held lock,
  a read-only cache, a link) but its links already point at a oneDNN of this version, it
  is used as it is.
* **Jittor's own download is checked**: real files there are used only when
  ``lib/libmkldnn.so`` is a whole ELF shared object (a truncated file is named) and
  ``include/dnnl.hpp`` exists.

Failures are ``FolderError`` (an ``OSError``) with one line saying what is wrong and what
to do; ``jboat_core.platform.onednn`` turns them into its reason.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
import sys
import time
from pathlib import Path

SONAME = "libdnnl.so.2"
LOCK = ".jboat-onednn.lock"
#: Seconds to wait for the set-up lock (``JBOAT_ONEDNN_WAIT`` overrides).
WAIT = 30.0
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FolderError(OSError):
    """The folder cannot be laid out (the message says why and what to do)."""


def _open_dir(name: str, parent: int | None, path: Path, create: bool) -> int:
    """The descriptor of folder ``name`` in ``parent`` (a descriptor, or None for an
    absolute path), created when missing; a symbolic link there is refused."""
    if create:
        try:
            os.mkdir(name, 0o755, dir_fd=parent)
        except FileExistsError:
            pass
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise FolderError(exc.errno, f"{path} is a symbolic link (to "
                              f"{os.readlink(path)}); jboat writes no link through it: "
                              f"remove it (rm {path}) and jboat lays the folder out "
                              "again") from None
        if exc.errno == errno.ENOTDIR:
            raise FolderError(exc.errno, f"{path} is not a folder; remove it and jboat "
                              "lays the folder out again") from None
        raise


def _wait_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("JBOAT_ONEDNN_WAIT", WAIT)))
    except ValueError:
        return WAIT


def lock_holder(fd: int) -> str:
    """The PID holding a lock on the file open as ``fd`` (``/proc/locks``), or ``?``."""
    st = os.fstat(fd)
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "?"
    for line in lines:
        parts = line.split()
        if "->" in parts:  # a waiter, not the holder
            continue
        try:
            pid, where = parts[4], parts[5].split(":")
            if (int(where[0], 16), int(where[1], 16), int(where[2])) == want:
                return pid
        except (IndexError, ValueError):
            continue
    return "?"


def _lock(fd: int, path: Path) -> None:
    """Take the set-up lock, waiting at most ``JBOAT_ONEDNN_WAIT`` seconds (saying so)."""
    limit, start, said = _wait_seconds(), time.monotonic(), False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waited = time.monotonic() - start
        if waited >= limit:
            raise FolderError(errno.ETIMEDOUT, f"the set-up lock {path} was held by PID "
                              f"{lock_holder(fd)} for more than {limit:g} s (a stopped "
                              "jboat?); end that process (or delete the lock file if none "
                              "holds it), or set JBOAT_ONEDNN_WAIT to wait longer")
        if waited >= 1 and not said:
            print(f"jboat: waiting for the oneDNN set-up lock {path} (held by PID "
                  f"{lock_holder(fd)}), at most {limit:g} s", file=sys.stderr, flush=True)
            said = True
        time.sleep(0.05)


def header_version(include: Path) -> tuple[int, int, int] | None:
    """oneDNN's ``(major, minor, patch)`` from its ``dnnl_version.h``, if readable."""
    import re

    for name in ("oneapi/dnnl/dnnl_version.h", "dnnl_version.h"):
        try:
            text = (Path(include) / name).read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if "DNNL_VERSION_MAJOR" in text:
            break
    else:
        return None
    found = [re.search(rf"#define DNNL_VERSION_{k}\s+(\d+)", text)
             for k in ("MAJOR", "MINOR", "PATCH")]
    return tuple(int(m.group(1)) for m in found) if all(found) else None


def elf_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole 64-bit ELF shared object (None: it is): not ELF, or
    shorter than its own headers say (a truncated download)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
        return f"is not a 64-bit ELF library ({size} bytes)"
    e_type, = struct.unpack_from("<H", head, 16)
    phoff, shoff = struct.unpack_from("<QQ", head, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 54)
    need = max(phoff + phentsize * phnum, shoff + shentsize * shnum)
    if e_type != 3:
        return "is not a shared library (ELF type %d)" % e_type
    if size < need:
        return f"is truncated ({size} of at least {need} bytes)"
    return None


def download_problem(folder: Path) -> str | None:
    """Why Jittor's own download in ``folder`` cannot be used (None: it can)."""
    so = folder / "lib" / "libmkldnn.so"
    why = elf_problem(so)
    if why:
        return f"lib/libmkldnn.so {why}"
    if not (folder / "include" / "dnnl.hpp").is_file():
        return "include/dnnl.hpp is missing"
    return None


def _link_ok(name: str, fd: int, dest: Path, version, folder: Path) -> bool:
    """``name`` in the folder ``fd`` is a link to keep: it resolves to an existing
    file/folder of the same oneDNN version."""
    try:
        if not stat.S_ISLNK(os.lstat(name, dir_fd=fd).st_mode):
            return False
        target = Path(os.readlink(name, dir_fd=fd))
        os.stat(name, dir_fd=fd)  # resolves (not dangling)
    except OSError:
        return False
    if target == dest:
        return True
    path = folder / name
    include = path if path.is_dir() else path.resolve().parent.parent / "include"
    return header_version(include) == version


def _replace_link(name: str, fd: int, dest: Path) -> None:
    """Point ``name`` (in the folder ``fd``) at ``dest`` atomically."""
    tmp = f".{name}.{os.getpid()}.tmp"
    try:
        os.unlink(tmp, dir_fd=fd)
    except FileNotFoundError:
        pass
    os.symlink(dest, tmp, dir_fd=fd)
    os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)


def links_right(folder: Path, lib: Path, include: Path) -> bool:
    """Whether the folder's links already point at a oneDNN of ``include``'s version
    (read only, following links: for a folder jboat cannot or will not write)."""
    version = header_version(include)
    so = folder / "lib" / "libmkldnn.so"
    return (version is not None and so.exists() and (folder / "lib" / SONAME).exists()
            and header_version(folder / "include") == version
            and header_version(so.resolve().parent.parent / "include") == version)


def lay_out(folder: Path, lib: Path, include: Path) -> str:
    """Make ``folder`` hold ``include``, ``lib/libmkldnn.so`` and ``lib/libdnnl.so.2``
    links to this oneDNN.

    Returns ``"jittor"`` when the folder holds Jittor's own download (real files, left
    alone), ``"kept"`` when the links were already right (written or not), ``"linked"``
    when they were (re)made. Serialised across processes by ``mkl/.jboat-onednn.lock``.

    Raises
    ------
    FolderError
        A link where a folder should be, a lock held too long, a folder that cannot be
        written (each while the links are not already right), a damaged download.
    """
    try:
        return _lay_out(folder, lib, include)
    except OSError as exc:
        if not (folder / "lib" / "libmkldnn.so").is_symlink() or not links_right(
                folder, lib, include):
            raise
        return "kept"  # nothing to write: the links are right, used as they are


def _lay_out(folder: Path, lib: Path, include: Path) -> str:
    Path(folder.parent.parent).mkdir(parents=True, exist_ok=True)  # the user's to place
    fds: list[int] = []
    try:
        fds.append(os.open(folder.parent.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        fds.append(_open_dir(folder.parent.name, fds[-1], folder.parent, True))
        lock = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                       dir_fd=fds[-1])
        fds.append(lock)
        _lock(lock, folder.parent / LOCK)
        fds.append(_open_dir(folder.name, fds[1], folder, True))
        top = fds[-1]
        if _is_real("include", top, stat.S_ISDIR) or _is_real(
                "lib/libmkldnn.so", top, stat.S_ISREG):
            why = download_problem(folder)
            if why:
                raise FolderError(errno.EINVAL, f"Jittor's oneDNN download in {folder} is "
                                  f"damaged: {why}; delete {folder} and jboat links this "
                                  "environment's oneDNN there")
            return "jittor"
        fds.append(_open_dir("lib", top, folder / "lib", True))
        version = header_version(include)
        made = False
        for name, fd, dest in (("include", top, include), ("libmkldnn.so", fds[-1], lib),
                               (SONAME, fds[-1], lib)):
            where = folder / name if fd == top else folder / "lib" / name
            if not _link_ok(name, fd, dest, version, where.parent):
                _replace_link(name, fd, dest)
                made = True
        return "linked" if made else "kept"
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _is_real(rel: str, fd: int, kind) -> bool:
    """Whether ``rel`` (under the folder ``fd``) is a real file/folder of ``kind``."""
    try:
        return kind(os.lstat(rel, dir_fd=fd).st_mode)
    except OSError:
        return False
