"""oneDNN for Jittor on CPU, from PyPI, with nothing to run first.

Jittor 1.3.11 sends dense products and convolutions to oneDNN (its ``mkl_*`` ops, chosen by
its matmul and conv tuners) when ``use_mkl=1``, its default. It then looks for oneDNN in
``<Jittor home>/.cache/jittor/mkl/dnnl_lnx_2.2.0_cpu_gomp/{include, lib/libmkldnn.so}`` and
downloads it from Jittor's server when that is missing, which fails offline. jboat depends
on PyPI's oneDNN 2.6 wheels on x86-64 Linux (``onednn-cpu-gomp`` and
``onednn-devel-cpu-gomp``, installed into the environment's ``lib/`` and ``include/``),
and before the first ``import jittor``:

1. lays out that folder with symbolic links to this environment's files: ``include``,
   ``lib/libmkldnn.so`` (what Jittor checks and links with) and ``lib/libdnnl.so.2`` (the
   library's own name, which the ops Jittor compiles ask for and find there through their
   run path, so that a plain ``import jittor`` works too); under a file lock, each link
   replaced atomically; a link that
   already points at an existing oneDNN of the same version, another venv's, is kept, a
   dangling or other-version one is replaced; a folder holding Jittor's own download, real
   files, is left alone and used as it is);
2. loads ``libdnnl.so.2`` with ``RTLD_GLOBAL`` (this environment's copy: the version its
   headers describe, whichever venv the links point at);
3. sets ``use_mkl=1`` unless the user set ``use_mkl`` (``0`` or ``1``) themselves.

Where none of this can be done (another platform, the wheels missing, a broken install, an
unwritable cache) jboat imports Jittor as before (``use_mkl=0`` where it decided the CPU)
and ``jboat doctor`` says why; nothing here raises. Measured (benchmarks/README.md): an MLP
784-256-10 hyper-iteration 31x faster, 2-D ``jt.matmul`` 30x.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path

FOLDER = "dnnl_lnx_2.2.0_cpu_gomp"
SONAME = "libdnnl.so.2"
WHEELS = ("onednn-cpu-gomp==2022.2.1", "onednn-devel-cpu-gomp==2022.2.1")
SUPPORTED = ("Linux", "x86_64")


@dataclass(frozen=True)
class OneDNN:
    """What jboat did about oneDNN in this process (read by ``jboat doctor``).

    Attributes
    ----------
    used : bool
        Whether ``use_mkl=1`` is in force with a local oneDNN (Jittor then loads its ops).
    reason : str
        One line: how, or why not.
    folder : Path or None
        Jittor's oneDNN folder.
    lib : Path or None
        The ``libdnnl`` loaded (None when Jittor's own download is used or nothing is).
    """

    used: bool
    reason: str
    folder: Path | None = None
    lib: Path | None = None


_STATE: OneDNN | None = None


def status() -> OneDNN | None:
    """What :func:`prepare` decided in this process (None before Jittor's import)."""
    return _STATE


def jittor_home(environ=os.environ) -> Path:
    """Jittor's home as ``jittor_utils.home()`` computes it, without importing Jittor.

    ``JITTOR_HOME`` wins, then the sticky ``JITTOR_HOME`` in ``~/.cache/jittor/config.json``,
    then the user's home.
    """
    home = Path.home()
    if environ.get("JITTOR_HOME"):
        return Path(environ["JITTOR_HOME"]).absolute()
    try:
        data = json.loads((home / ".cache" / "jittor" / "config.json").read_text())
        return Path(data.get("JITTOR_HOME") or home).absolute()
    except (OSError, ValueError, AttributeError):
        return home


def mkl_folder(environ=os.environ) -> Path:
    """The folder Jittor looks in for oneDNN."""
    return jittor_home(environ) / ".cache" / "jittor" / "mkl" / FOLDER


def wheel_files(prefix: str | os.PathLike | None = None) -> tuple[Path, Path] | None:
    """``(lib/libdnnl.so.2, include)`` of the oneDNN wheels in this environment, if there."""
    root = Path(prefix or sys.prefix)
    lib, include = root / "lib" / SONAME, root / "include"
    if lib.is_file() and (include / "dnnl.hpp").is_file() \
            and (include / "dnnl_version.h").is_file():
        return lib, include
    return None


def header_version(include: Path) -> tuple[int, int, int] | None:
    """oneDNN's ``(major, minor, patch)`` from its ``dnnl_version.h``, if readable."""
    for name in ("oneapi/dnnl/dnnl_version.h", "dnnl_version.h"):
        try:
            text = (Path(include) / name).read_text()
        except OSError:
            continue
        if "DNNL_VERSION_MAJOR" in text:
            break
    else:
        return None
    found = [re.search(rf"#define DNNL_VERSION_{k}\s+(\d+)", text)
             for k in ("MAJOR", "MINOR", "PATCH")]
    return tuple(int(m.group(1)) for m in found) if all(found) else None


def _replace_link(link: Path, dest: Path) -> None:
    """Point ``link`` at ``dest`` atomically (a unique temporary link renamed over it)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(dest, tmp)
    os.replace(tmp, link)


def _link_ok(link: Path, dest: Path, version) -> bool:
    """A link to keep: it resolves to an existing file/folder of the same oneDNN version."""
    if not link.is_symlink() or not link.exists():
        return False
    if Path(os.readlink(link)) == dest:
        return True
    include = link if link.is_dir() else link.resolve().parent.parent / "include"
    return header_version(include) == version


def lay_out(folder: Path, lib: Path, include: Path) -> str:
    """Make ``folder`` hold ``include``, ``lib/libmkldnn.so`` and ``lib/libdnnl.so.2`` links
    to this oneDNN.

    Returns ``"jittor"`` when the folder holds Jittor's own download (real files, left
    alone), ``"kept"`` when the links were already right, ``"linked"`` when they were
    (re)made. Serialised across processes by ``folder/../.jboat-onednn.lock``.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder.parent / ".jboat-onednn.lock",
                 os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        so, inc = folder / "lib" / "libmkldnn.so", folder / "include"
        if (so.is_file() and not so.is_symlink()) or (inc.is_dir() and not inc.is_symlink()):
            return "jittor"
        (folder / "lib").mkdir(parents=True, exist_ok=True)
        version = header_version(include)
        made = False
        for link, dest in ((inc, include), (so, lib), (folder / "lib" / SONAME, lib)):
            if not _link_ok(link, dest, version):
                _replace_link(link, dest)
                made = True
        return "linked" if made else "kept"
    finally:
        os.close(fd)


def _platform_reason() -> str | None:
    system, machine = platform.system(), platform.machine()
    if (system, machine) != SUPPORTED:
        return (f"PyPI's oneDNN wheels are for x86-64 Linux; this is {system} {machine} "
                "(Jittor's own use_mkl setting applies)")
    return None


def prepare(environ=os.environ, prefix=None) -> OneDNN:
    """Before ``import jittor``: make Jittor use the environment's oneDNN where it can.

    Never raises; the returned (and remembered) :class:`OneDNN` says what was done. The
    user's own ``use_mkl`` is respected: ``0`` switches oneDNN off, ``1`` keeps it on.
    """
    global _STATE
    _STATE = _decide(environ, prefix)
    return _STATE


def _decide(environ, prefix) -> OneDNN:
    if environ.get("use_mkl") == "0":
        return OneDNN(False, "use_mkl=0 is set in the environment")
    why = _platform_reason()
    if why:
        return OneDNN(False, why)
    files = wheel_files(prefix)
    if files is None:
        return OneDNN(False, f"oneDNN's wheels are not installed in {prefix or sys.prefix} "
                             f"(pip install {' '.join(WHEELS)})")
    lib, include = files
    folder = mkl_folder(environ)
    try:
        how = lay_out(folder, lib, include)
    except OSError as exc:
        return OneDNN(False, f"cannot lay out {folder}: {exc.strerror or exc}", folder)
    if how == "jittor":
        environ.setdefault("use_mkl", "1")
        return OneDNN(True, f"Jittor's own oneDNN download in {folder}", folder)
    try:
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        return OneDNN(False, f"cannot load {lib}: {exc}", folder)
    environ.setdefault("use_mkl", "1")
    return OneDNN(environ.get("use_mkl") == "1",
                  f"oneDNN {'.'.join(map(str, header_version(include) or ()))} from {lib}",
                  folder, lib)
