"""``jboat doctor``: what Jittor will run with here, why, and what to do about each problem.

One report, never a traceback: jboat and Jittor versions, the C++ compiler, the device
decision and each check of Jittor's CUDA path (:mod:`jboat_core.platform.device`), whether
oneDNN is used (and why not), whether jboat's corrections to Jittor's source are in force
(:mod:`jboat_core.platform.jittorfix`), MPI, and Jittor's cache folder. Every problem found
ends with one line saying what to do. It imports Jittor (in this process, through jboat's
set-up), which compiles Jittor's core the first time; ``--no-import`` reports what is known
before that.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata


@dataclass(frozen=True)
class Problem:
    """Something that keeps jboat from running as it should here, and what to do."""

    about: str
    problem: str
    fix: str

    def as_dict(self) -> dict:
        return {"about": self.about, "problem": self.problem, "fix": self.fix}


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _compiler() -> tuple[str, bool]:
    """``(one line about the C++ compiler, whether one was found)``; a compiler printing
    text that is not UTF-8 is read with replacement characters."""
    cc = os.environ.get("cc_path") or shutil.which("g++") or shutil.which("clang++")
    if not cc:
        return "none found (Jittor needs g++ or clang++)", False
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{cc}: cannot run ({type(exc).__name__}: {exc})", False
    lines = out.decode("utf-8", errors="replace").splitlines()
    return f"{cc}: {lines[0].strip() if lines else 'unknown version'}", True


def report(import_jittor: bool = True) -> dict:
    """The facts and the problems, as a dict (``jboat doctor --json`` prints it).

    ``facts["problems"]`` is a list of ``{"about", "problem", "fix"}``.
    """
    from ..platform import _jittor, device, jittorfix, onednn

    compiler, has_cc = _compiler()
    facts = {"python": f"{sys.version.split()[0]} ({sys.prefix})",
             "platform": f"{platform.system()} {platform.machine()}",
             "jboat": _version("jboat"), "jittor": _version("jittor"), "compiler": compiler}
    problems = [] if has_cc else [Problem("compiler", compiler, "install a C++ compiler "
                                          "(Debian/Ubuntu: apt-get install g++)")]
    why_mpi = _jittor.mpi_problem()
    try:
        if "jittor" not in sys.modules:
            device.apply(announce=False)  # the report says it
        _jittor.prepare_environment()
    except Exception as exc:  # noqa: BLE001 - the report must not fail
        facts["setup_error"] = f"{type(exc).__name__}: {exc}"
        problems.append(Problem("setup", facts["setup_error"], _setup_fix(exc)))
    problems += _device_facts(facts, device)
    problems += _onednn_facts(facts, onednn.status())
    for fix in jittorfix.states() or ():
        facts[f"jittor_fix_{fix.name}"] = f"{fix.state}: {fix.reason}"
        if not fix.active:
            problems.append(Problem(f"jittor_fix_{fix.name}", fix.reason, _jittorfix_fix(fix)))
    facts["mpicc"] = shutil.which("mpicc") or ("not found (optional, for mpirun: apt-get "
                                               "install openmpi-bin libopenmpi-dev)")
    if why_mpi:
        facts["jittor_import"] = f"refused: started by mpirun but {why_mpi}"
        problems.append(Problem("mpi", facts["jittor_import"], _jittor.MPI_HINT))
    elif import_jittor and "setup_error" not in facts:
        found = _jittor_facts()
        facts.update(found)
        problems += _import_problems(found, facts)
    facts["problems"] = [p.as_dict() for p in problems]
    return facts


def _setup_fix(exc: Exception) -> str:
    from ..platform.device import DeviceError

    if isinstance(exc, DeviceError):
        return ("unset JBOAT_DEVICE (and use_cuda) to let jboat choose, or make the cuda_* "
                "checks below pass")
    return "the line above names the variable or file at fault"


def _device_facts(facts: dict, device) -> list[Problem]:
    """The decision and every check of Jittor's CUDA path; a failed check is a problem
    only where a device exists or CUDA was asked for (a machine without a GPU is fine)."""
    decided = device.status()
    if decided is not None:
        facts["device"] = f"{decided.device} ({decided.source}): {decided.reason}"
    try:
        checks, _ = device.run_checks()
    except Exception as exc:  # noqa: BLE001 - the report must not fail
        facts["cuda_checks"] = f"failed: {type(exc).__name__}: {exc}"
        return []
    for check in checks:
        facts[f"cuda_{check.name}"] = f"{'ok' if check.ok else 'no'}: {check.found}"
    asked = decided is not None and decided.device == "cuda"
    wanted = checks[0].ok or asked or "setup_error" in facts
    if not wanted:
        facts["cuda_note"] = ("no CUDA device: jboat uses the CPU, nothing to do (on a "
                              "machine with an NVIDIA GPU: install its driver)")
        return []
    return [Problem(f"cuda_{c.name}", c.found, c.fix) for c in checks if not c.ok]


def _onednn_facts(facts: dict, state) -> list[Problem]:
    from ..platform import onednn

    facts["onednn"] = state.used if state else False
    facts["onednn_reason"] = state.reason if state else "not prepared"
    facts["use_mkl"] = os.environ.get("use_mkl", "(unset: Jittor's default, 1)")
    if state is None or state.used or "use_mkl=0" in state.reason \
            or onednn._platform_reason():
        return []
    if "not installed" in state.reason:
        fix = f"pip install {' '.join(onednn.WHEELS)}"
    elif "cannot lay out" in state.reason:
        fix = f"make {state.folder} writable (or set JITTOR_HOME to a writable folder)"
    else:
        fix = f"pip install --force-reinstall {' '.join(onednn.WHEELS)}"
    return [Problem("onednn", state.reason, fix)]


def _jittorfix_fix(fix) -> str:
    if "cannot write" in fix.reason:
        return ("run `jboat doctor` once as a user who can write Jittor's package folder "
                "(the corrections are written once)")
    if "written for Jittor" in fix.reason:
        return "pip install jittor==1.3.11.0 (jboat's corrections are written for it)"
    return "pip install --force-reinstall jittor==1.3.11.0, then run `jboat doctor` again"


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
    return facts


def _import_problems(found: dict, facts: dict) -> list[Problem]:
    if found["jittor_import"] != "ok":
        return [Problem("jittor_import", found["jittor_import"],
                        "JBOAT_DEVICE=cpu keeps CUDA out of Jittor's import; `jboat doctor "
                        "-v` shows Jittor's own log lines")]
    if facts.get("onednn") and not found["onednn_ops_loaded"]:
        facts["onednn"] = False
        return [Problem("onednn_ops_loaded", "oneDNN was set up but Jittor did not load its "
                        "oneDNN ops", "run with use_mkl=0 (without oneDNN), or `jboat doctor "
                        "-v` to see why Jittor did not load them")]
    return []


def format_report(facts: dict) -> str:
    """Aligned ``key  value`` lines, then each problem and the line saying what to do."""
    shown = {k: v for k, v in facts.items() if k != "problems"}
    width = max(len(k) for k in shown)
    lines = [f"{k.ljust(width)}  {v}" for k, v in shown.items()]
    problems = facts.get("problems", [])
    lines.append("")
    lines.append(f"{len(problems)} problem(s):" if problems else "no problems found")
    for p in problems:
        lines += [f"- {p['about']}: {p['problem']}", f"  to do: {p['fix']}"]
    return "\n".join(lines)
