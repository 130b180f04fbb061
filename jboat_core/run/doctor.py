"""``jboat doctor``: what Jittor will run with here, and why.

One report, never a traceback: jboat and Jittor versions, the C++ compiler, whether
oneDNN is used (and why not), whether jboat's corrections to Jittor's source are in force
(``jboat_core.platform.jittorfix``), MPI, CUDA, and Jittor's cache folder. It imports Jittor (in
this process, through jboat's set-up), which compiles Jittor's core the first time.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _compiler() -> str:
    cc = os.environ.get("cc_path") or shutil.which("g++") or shutil.which("clang++")
    if not cc:
        return "none found (Jittor needs g++ or clang++)"
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=20)
        return f"{cc}: {out.stdout.splitlines()[0] if out.stdout else 'unknown version'}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{cc}: cannot run ({exc})"


def report(import_jittor: bool = True) -> dict:
    """The facts, as a dict of strings/booleans (``jboat doctor --json`` prints it)."""
    from ..platform import _jittor, jittorfix, onednn

    facts = {"python": f"{sys.version.split()[0]} ({sys.prefix})",
             "platform": f"{platform.system()} {platform.machine()}",
             "jboat": _version("jboat"), "jittor": _version("jittor"),
             "compiler": _compiler()}
    why_mpi = _jittor.mpi_problem()
    try:
        _jittor.prepare_environment()
    except Exception as exc:  # noqa: BLE001 - the report must not fail
        facts["setup_error"] = f"{type(exc).__name__}: {exc}"
    state = onednn.status()
    facts["onednn"] = state.used if state else False
    facts["onednn_reason"] = state.reason if state else "not prepared"
    facts["use_mkl"] = os.environ.get("use_mkl", "(unset: Jittor's default, 1)")
    for fix in jittorfix.states() or ():
        facts[f"jittor_fix_{fix.name}"] = f"{fix.state}: {fix.reason}"
    facts["mpicc"] = shutil.which("mpicc") or "not found (no MPI: apt-get install "\
                                                "openmpi-bin libopenmpi-dev)"
    if why_mpi:
        facts["jittor_import"] = f"refused: started by mpirun but {why_mpi}"
        return facts
    if import_jittor:
        facts.update(_jittor_facts())
    return facts


def _jittor_facts() -> dict:
    from ..platform import _jittor

    try:
        jt = _jittor.jittor()
    except BaseException as exc:  # noqa: BLE001 - a failing import is what we report
        return {"jittor_import": f"failed: {type(exc).__name__}: {exc}"}
    ext = jt.compile_extern
    mkl = getattr(ext, "mkl_ops", None) is not None
    facts = {"jittor_import": "ok",
             "onednn_ops_loaded": mkl,
             "mpi": bool(getattr(ext, "has_mpi", False)),
             "in_mpi": bool(getattr(jt, "in_mpi", False)),
             "cuda": bool(getattr(jt.compiler, "has_cuda", False)),
             "cache": str(getattr(jt.compiler, "cache_path", "?"))}
    if not mkl:
        facts["onednn"] = False
    return facts


def format_report(facts: dict) -> str:
    """Aligned ``key: value`` lines."""
    width = max(len(k) for k in facts)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in facts.items())
