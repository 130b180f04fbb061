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

The folder is laid out by :mod:`jboat_core.platform.dnnlfolder`: never through a symbolic
link, waiting a bounded time for the set-up lock, using a folder it cannot write when its
links are already right, and checking Jittor's own download before trusting it.

Where none of this can be done (another platform, the wheels missing) jboat imports
Jittor as before (``use_mkl=0`` where jboat decided the CPU) and ``jboat doctor`` says
why. Where the wheels are there but the folder cannot be used (a lock held too long, a
link, an unwritable or damaged folder), oneDNN is switched off with one warning line
(``use_mkl=0`` unless the user set it) and ``jboat doctor`` says why. A
``~/.cache/jittor/config.json`` that would make Jittor's import fail (a non-text
``JITTOR_HOME``...) is one line (``JittorHomeError``). Measured
(benchmarks/results/HISTORY.md, "oneDNN: on by default"): a 2-D ``jt.matmul`` of a
1000 x 5000 matrix 10x faster (19.5 to 1.96 ms), whole ridge-large hyper-iterations
3.8-4.0x.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import JboatError
from .dnnlfolder import download_problem, header_version, lay_out  # noqa: F401 - public

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
    problem : bool
        oneDNN could be used here but something stops it (said on stderr once).
    """

    used: bool
    reason: str
    folder: Path | None = None
    lib: Path | None = None
    problem: bool = False


_STATE: OneDNN | None = None


def status() -> OneDNN | None:
    """What :func:`prepare` decided in this process (None before Jittor's import)."""
    return _STATE


class JittorHomeError(JboatError):
    """Jittor's own settings file (``~/.cache/jittor/config.json``) would make its import
    fail; the message names the file, the entry and what to do."""


class OneDNNError(JboatError):
    """The user asks for oneDNN (``use_mkl=1``) where it cannot be used."""


def jittor_home(environ=os.environ) -> Path:
    """Jittor's home as ``jittor_utils.home()`` computes it, without importing Jittor.

    ``JITTOR_HOME`` wins, then the sticky ``JITTOR_HOME`` in ``~/.cache/jittor/config.json``,
    then the user's home.

    Raises
    ------
    JittorHomeError
        ``config.json`` cannot be read, is not a JSON object, or its ``JITTOR_HOME`` is
        not a non-empty path (Jittor's import would end in a traceback).
    """
    home = Path.home()
    if "JITTOR_HOME" in environ:  # Jittor takes it as it is, even empty
        if not environ["JITTOR_HOME"]:
            raise JittorHomeError("the environment variable JITTOR_HOME is empty; unset it "
                                  "or give Jittor's home folder")
        return Path(environ["JITTOR_HOME"]).absolute()
    config = home / ".cache" / "jittor" / "config.json"
    if not config.exists():
        return home
    fix = "fix it or delete it (Jittor reads it at import and writes it again)"
    try:
        data = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise JittorHomeError(f"{config}: cannot be read as JSON "
                              f"({' '.join(str(exc).split())[:120]}); {fix}") from None
    if not isinstance(data, dict):
        raise JittorHomeError(f"{config}: holds {type(data).__name__}, not a table of "
                              f"settings; {fix}")
    value = data.get("JITTOR_HOME", str(home))
    if not isinstance(value, str) or not value:
        raise JittorHomeError(f"{config}: JITTOR_HOME is {json.dumps(value)[:80]}, not the "
                              f"path of a folder; {fix}")
    return Path(value).absolute()


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


def _platform_reason() -> str | None:
    system, machine = platform.system(), platform.machine()
    if (system, machine) != SUPPORTED:
        return (f"PyPI's oneDNN wheels are for x86-64 Linux; this is {system} {machine} "
                "(Jittor's own use_mkl setting applies)")
    return None


def prepare(environ=os.environ, prefix=None) -> OneDNN:
    """Before ``import jittor``: make Jittor use the environment's oneDNN where it can.

    The returned (and remembered) :class:`OneDNN` says what was done. The user's own
    ``use_mkl`` is respected: ``0`` switches oneDNN off, ``1`` keeps it on. Where the
    wheels are there but the folder cannot be used (a held lock, a link, a read-only or
    damaged folder), oneDNN is switched off (``use_mkl=0`` unless set) and one warning
    line on stderr says why: Jittor then runs its dense products about 30x slower.

    Raises
    ------
    JittorHomeError
        Jittor's own ``config.json`` would make its import fail (one line instead).
    OneDNNError
        ``use_mkl=1`` is set where the folder cannot be used.
    """
    global _STATE
    _STATE = _decide(environ, prefix)
    if _STATE.problem:
        print(f"jboat: warning: oneDNN is not used ({_STATE.reason}); Jittor's dense "
              "products run about 30x slower (`jboat doctor` shows this)", file=sys.stderr,
              flush=True)
    return _STATE


def _without(environ, reason: str, folder: Path | None) -> OneDNN:
    """oneDNN off because of a problem: Jittor must not look for (and download) it."""
    if environ.get("use_mkl") == "1":
        raise OneDNNError(f"use_mkl=1 is set but oneDNN cannot be used ({reason}); fix "
                          "that, or unset use_mkl to run without oneDNN")
    environ.setdefault("use_mkl", "0")
    return OneDNN(False, reason, folder, problem=True)


def _decide(environ, prefix) -> OneDNN:
    folder = mkl_folder(environ)  # a config.json Jittor's import would fail on: one line
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
    try:
        how = lay_out(folder, lib, include)
    except OSError as exc:
        return _without(environ, f"cannot lay out {folder}: {exc.strerror or exc}", folder)
    if how == "jittor":
        environ.setdefault("use_mkl", "1")
        return OneDNN(True, f"Jittor's own oneDNN download in {folder}", folder)
    try:
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        return _without(environ, f"cannot load {lib}: {exc}", folder)
    environ.setdefault("use_mkl", "1")
    return OneDNN(environ.get("use_mkl") == "1",
                  f"oneDNN {'.'.join(map(str, header_version(include) or ()))} from {lib}",
                  folder, lib)
