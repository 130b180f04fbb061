"""CPU or CUDA, decided before Jittor's first import: nothing to set by hand.

Jittor 1.3.11 builds its CUDA backend whenever it finds an ``nvcc`` (on ``PATH``, then
``/usr/local/cuda/bin``, ``/usr/bin``, ``/opt/cuda/bin``), loads ``libcudart.so`` from
``<nvcc's folder>/../lib64`` and fails at import when that is missing (``OSError:
.../libcudart.so: cannot open shared object file``) or when the CUDA is 13 (its sources use
fields CUDA 13 removed). jboat checks, in this order and stopping at the first failure:

1. **a device**: the NVIDIA driver is there (``/proc/driver/nvidia``, ``/dev/nvidiactl`` or
   WSL's ``/dev/dxg``) and reports at least one device (asked in a child process, as
   Jittor does, so that this process never initialises CUDA);
2. **a compiler Jittor supports**: an ``nvcc`` of CUDA 10 to 12, found where Jittor looks;
3. **a CUDA runtime**: the ``libcudart.so`` Jittor will load is there, or the CUDA 12
   wheels of ``pip install 'jboat[cuda12]'`` are (:mod:`jboat_core.platform.cudawheels`:
   jboat then points Jittor at a CUDA home made of that compiler and the wheels).

All three: CUDA (``nvcc_path=`` the compiler, ``use_cuda=1``). Otherwise the CPU settings
(``nvcc_path=`` empty: no CUDA probing; ``FIX_TORCH_ERROR=0``; ``log_silent=1``) and one
line on stderr, once per process, saying why; ``jboat doctor`` runs every check and ends
each failed one with what to do. Each variable is set only where you have not set it.

Forcing: ``JBOAT_DEVICE=cpu`` (silently; ``JBOAT_CPU_ONLY=1`` is its alias) or
``JBOAT_DEVICE=cuda`` (every check runs; where one fails, :class:`DeviceError` names all
that is missing). Your own Jittor variables win: with ``nvcc_path`` set, Jittor's own
detection applies as you set it; ``use_cuda=1`` asks for CUDA like ``JBOAT_DEVICE=cuda``.
A process started by one that decided (``jboat compare``'s workers, tests) inherits the
decision through ``JBOAT_DEVICE_DECIDED`` and says nothing.

The decision never imports Jittor and costs a few file checks on a machine without an
NVIDIA driver; each probe is a parameter of :func:`decide` (:class:`Probes`) for tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

from . import cudawheels
from ..errors import JittorSetupError

#: CUDA major versions Jittor 1.3.11 builds with.
SUPPORTED = range(10, 13)
#: Where Jittor looks for nvcc after ``PATH`` (``jittor/compiler.py``).
NVCC_PLACES = ("/usr/local/cuda/bin/nvcc", "/usr/bin/nvcc", "/opt/cuda/bin/nvcc")
#: Signs of an NVIDIA driver (Linux, and WSL's GPU device).
DRIVER_SIGNS = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/dxg")
#: Inherited by child processes: the parent's decision (they then stay quiet) and the
#: variables jboat set (a child's own request may change them; the user's it leaves alone).
DECIDED = "JBOAT_DEVICE_DECIDED"
SET_BY_JBOAT = "JBOAT_DEVICE_SET"
CPU_SETTINGS = {"nvcc_path": "", "FIX_TORCH_ERROR": "0", "log_silent": "1"}
DOCTOR = "`jboat doctor` says why"


class DeviceError(JittorSetupError):
    """``JBOAT_DEVICE=cuda`` (or ``use_cuda=1``) where Jittor's CUDA path cannot work, or an
    unknown ``JBOAT_DEVICE``."""


@dataclass(frozen=True)
class Check:
    """One condition of Jittor's CUDA path.

    Attributes
    ----------
    name : str
        ``"device"``, ``"nvcc"`` or ``"runtime"``.
    ok : bool
    found : str
        What was found, in one line.
    fix : str
        What to do, in one line (empty when ``ok``).
    """

    name: str
    ok: bool
    found: str
    fix: str = ""


@dataclass(frozen=True)
class Decision:
    """What jboat decided for Jittor in this process (read by ``jboat doctor``).

    Attributes
    ----------
    device : str
        ``"cpu"``, ``"cuda"``, or ``"jittor"`` (your ``nvcc_path``: Jittor decides).
    source : str
        ``"automatic"``, the variable that forced it, or ``"the parent process"``.
    reason : str
        One line: why.
    checks : tuple of Check
        The checks that ran (all of them under ``JBOAT_DEVICE=cuda`` and in ``doctor``).
    settings : dict
        The variables jboat sets where you have not set them.
    """

    device: str
    source: str
    reason: str
    checks: tuple[Check, ...] = ()
    settings: dict = field(default_factory=dict)

    def line(self) -> str:
        """The one line printed on stderr for an automatic decision."""
        if self.device == "cuda":
            return f"jboat: CUDA: {self.reason}"
        return (f"jboat: running on the CPU: {self.reason} ({DOCTOR}; JBOAT_DEVICE=cpu "
                "hides this line)")


@dataclass(frozen=True)
class Devices:
    """What the NVIDIA driver reports: ``count`` devices, or why none."""

    count: int
    text: str


def driver_devices(signs: tuple[str, ...] = DRIVER_SIGNS, env: dict | None = None) -> Devices:
    """Ask the NVIDIA driver how many devices it sees, in a child process (CUDA is never
    initialised in this one). No driver (none of ``signs`` exists): answered from the file
    system alone. ``env``: the child's environment (default this one's)."""
    if not any(os.path.exists(p) for p in signs):
        return Devices(0, "no NVIDIA driver found")
    try:
        out = subprocess.run([sys.executable, "-c", _DEVICE_QUERY], capture_output=True,
                             timeout=60, env=env)  # CUDA_VISIBLE_DEVICES is respected
        found = json.loads(out.stdout.decode(errors="replace").strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        return Devices(0, f"the driver could not be asked ({type(exc).__name__})")
    if "error" in found:
        return Devices(0, found["error"])
    caps = ", ".join(f"sm_{c}" for c in found["caps"])
    return Devices(len(found["caps"]), f"{len(found['caps'])} device(s) ({caps}), driver "
                   f"for CUDA {found['driver'] // 1000}.{found['driver'] % 1000 // 10}")


_DEVICE_QUERY = """
import ctypes, json

def say(**what):
    print(json.dumps(what))
    raise SystemExit

try:
    cuda = ctypes.CDLL("libcuda.so.1")
except OSError as exc:
    say(error=f"the NVIDIA driver library does not load ({exc})")
version, count = ctypes.c_int(), ctypes.c_int()
cuda.cuDriverGetVersion(ctypes.byref(version))
status = cuda.cuInit(0)
if status != 0:
    say(error=f"the NVIDIA driver failed to start (cuInit error {status})")
cuda.cuDeviceGetCount(ctypes.byref(count))
caps = []
for i in range(count.value):
    dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    cuda.cuDeviceGet(ctypes.byref(dev), i)
    cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)  # compute capability
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)
    caps.append(major.value * 10 + minor.value)
if not caps:
    say(error="the NVIDIA driver reports no device")
say(driver=version.value, caps=caps)
"""


def find_nvcc(environ: Mapping[str, str]) -> str | None:
    """The ``nvcc`` Jittor would use: your ``nvcc_path``, else the first on
    ``environ["PATH"]``, else one of :data:`NVCC_PLACES`."""
    if environ.get("nvcc_path"):
        return environ["nvcc_path"]
    found = shutil.which("nvcc", path=environ.get("PATH", os.defpath))
    return found or next((p for p in NVCC_PLACES if os.access(p, os.X_OK)), None)


def nvcc_release(nvcc: str) -> tuple[int, int] | None:
    """``(major, minor)`` from ``nvcc --version`` (None: it does not run or say)."""
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"release (\d+)\.(\d+)", out.decode(errors="replace"))
    return (int(found.group(1)), int(found.group(2))) if found else None


def jittor_runtime(nvcc: str) -> Path:
    """The ``libcudart.so`` Jittor loads for this ``nvcc`` (``check_cuda`` in
    ``jittor/compiler.py``: beside the resolved executable, in ``../lib64``)."""
    if nvcc == "/usr/bin/nvcc":
        return Path("/usr/lib/x86_64-linux-gnu/libcudart.so")
    return Path(os.path.realpath(nvcc)).parent.parent / "lib64" / "libcudart.so"


def _wheel_home(wheels: cudawheels.CudaWheels, nvcc: str) -> Path:
    """Lay out (once) the CUDA home of ``nvcc`` and the wheels in Jittor's cache folder."""
    from .onednn import jittor_home

    base = jittor_home() / ".cache" / "jittor" / "jboat-cuda"
    return cudawheels.lay_out(cudawheels.home_folder(base, wheels, nvcc), wheels, nvcc)


@dataclass(frozen=True)
class Probes:
    """The machine as the decision sees it; tests pass fakes."""

    devices: Callable[[], Devices] = driver_devices
    find_nvcc: Callable[[Mapping[str, str]], str | None] = find_nvcc
    nvcc_release: Callable[[str], tuple[int, int] | None] = nvcc_release
    runtime: Callable[[str], Path] = jittor_runtime
    wheels: Callable[[], cudawheels.CudaWheels | None] = cudawheels.find
    home: Callable[[cudawheels.CudaWheels, str], Path] = _wheel_home


def requested(environ: Mapping[str, str]) -> tuple[str, str]:
    """``(device, source)`` asked for by the environment: ``("auto", "automatic")`` when
    nothing is. Raises :class:`DeviceError` for an unknown or contradictory request."""
    device = environ.get("JBOAT_DEVICE", "").strip().lower()
    cpu_only = environ.get("JBOAT_CPU_ONLY", "") not in ("", "0")
    if device not in ("", "auto", "cpu", "cuda"):
        raise DeviceError(f"JBOAT_DEVICE={environ['JBOAT_DEVICE']!r} is not a device: use "
                          "cpu, cuda or auto (or unset it)")
    if device == "cuda" and cpu_only:
        raise DeviceError("JBOAT_DEVICE=cuda and JBOAT_CPU_ONLY=1 contradict each other: "
                          "unset one")
    if device in ("cpu", "cuda"):
        return device, f"JBOAT_DEVICE={device}"
    if cpu_only:
        return "cpu", "JBOAT_CPU_ONLY=1"
    if environ.get("use_cuda", "0") not in ("", "0"):
        return "cuda", f"use_cuda={environ['use_cuda']}"
    return "auto", "automatic"


def users_view(environ: Mapping[str, str]) -> tuple[dict, set]:
    """The environment without what jboat set in a parent process (:data:`SET_BY_JBOAT`),
    and the names of those variables."""
    ours = set(filter(None, environ.get(SET_BY_JBOAT, "").split(",")))
    return ({k: v for k, v in environ.items() if k not in ours | {DECIDED, SET_BY_JBOAT}},
            ours)


def decide(environ: Mapping[str, str] = os.environ, probes: Probes | None = None,
           full: bool = False) -> Decision:
    """Decide CPU or CUDA for Jittor (see the module docstring); changes nothing.

    Parameters
    ----------
    environ : mapping
        The environment to read.
    probes : Probes, optional
        The machine (default: this one).
    full : bool
        Run every check even after one failed (``jboat doctor``).

    Raises
    ------
    DeviceError
        ``JBOAT_DEVICE`` is unknown, or CUDA is asked for and cannot work.
    """
    probes = probes or Probes()
    inherited = environ.get(DECIDED)
    environ, _ = users_view(environ)
    device, source = requested(environ)
    if inherited in ("cpu", "cuda") and device == "auto" and not full:
        return Decision(inherited, "the parent process", "decided by the process that "
                        "started this one")
    if device == "cuda" and environ.get("nvcc_path") == "":
        raise DeviceError(f"{source} but nvcc_path is set empty (no CUDA for Jittor): unset "
                          "one of them")
    if device == "cpu":
        return Decision("cpu", source, f"{source} is set", settings=dict(CPU_SETTINGS))
    if "nvcc_path" in environ and device == "auto":
        nvcc = environ["nvcc_path"]
        if not nvcc:
            return Decision("cpu", "nvcc_path= (yours)", "nvcc_path is set empty: Jittor "
                            "does not look for CUDA", settings=dict(CPU_SETTINGS))
        return Decision("jittor", "nvcc_path (yours)", f"nvcc_path={nvcc} is set: Jittor "
                        "uses it as it is")
    checks, nvcc = run_checks(environ, probes, full or device == "cuda")
    failed = [c for c in checks if not c.ok]
    if not failed:
        return Decision("cuda", source, "; ".join(c.found for c in checks), checks,
                        {"nvcc_path": nvcc, "use_cuda": "1", "log_silent": "1"})
    if device == "cuda":
        raise DeviceError(f"{source}, but Jittor's CUDA path cannot work here: "
                          + "; ".join(c.found for c in failed) + f" ({DOCTOR} and what to "
                          "do; unset it to let jboat choose)")
    return Decision("cpu", source, failed[0].found, checks, dict(CPU_SETTINGS))


def run_checks(environ: Mapping[str, str] = os.environ, probes: Probes | None = None,
               full: bool = True) -> tuple[list[Check], str | None]:
    """The checks in order (stopping at the first failure unless ``full``) and the
    ``nvcc`` Jittor should use (None: no CUDA)."""
    probes = probes or Probes()
    devices = probes.devices()
    checks = [Check("device", devices.count > 0, devices.text if devices.count else
                    f"no CUDA device ({devices.text})",
                    "" if devices.count else "on a machine with an NVIDIA GPU, install its "
                    "driver (and check CUDA_VISIBLE_DEVICES); without one, nothing to do: "
                    "the CPU is used")]
    if not checks[0].ok and not full:
        return checks, None
    nvcc_check, nvcc, release = _nvcc_check(environ, probes)
    checks.append(nvcc_check)
    if not nvcc_check.ok:
        return checks, None
    runtime_check, nvcc = _runtime_check(probes, nvcc, release)
    checks.append(runtime_check)
    return checks, nvcc


def _nvcc_check(environ, probes: Probes):
    nvcc = probes.find_nvcc(environ)
    if nvcc is None:
        return Check("nvcc", False, "no nvcc (PATH, " + ", ".join(NVCC_PLACES) + ")",
                     "install a CUDA 12 compiler (NVIDIA's cuda-nvcc-12-x package; PyPI's "
                     "CUDA 12 wheels have none) and put its bin/ on PATH"), None, None
    release = probes.nvcc_release(nvcc)
    if release is None:
        return Check("nvcc", False, f"{nvcc} does not say its version",
                     "check that `nvcc --version` runs"), None, None
    text = f"nvcc {release[0]}.{release[1]} at {nvcc}"
    if release[0] not in SUPPORTED:
        return Check("nvcc", False, f"{text} (Jittor 1.3.11 builds with CUDA 10 to 12 only)",
                     "install a CUDA 12 compiler beside it (NVIDIA's cuda-nvcc-12-x) and put "
                     "its bin/ first on PATH"), None, release
    return Check("nvcc", True, text), nvcc, release


def _runtime_check(probes: Probes, nvcc, release):
    lib = probes.runtime(nvcc)
    if lib.is_file():
        return Check("runtime", True, f"CUDA runtime {lib}"), nvcc
    wheels = probes.wheels()
    if wheels is None:
        return Check("runtime", False, f"no CUDA runtime where Jittor loads it ({lib})",
                     f"{cudawheels.EXTRA} (jboat then points Jittor at the wheels), or "
                     "install the CUDA runtime beside nvcc"), None
    if not wheels.complete or wheels.version[0] != release[0]:
        return Check("runtime", False, f"{lib} missing and {wheels.describe()} do not fit "
                     f"nvcc {release[0]}.{release[1]}", cudawheels.EXTRA + " with a CUDA "
                     f"{wheels.version[0]} nvcc"), None
    try:
        home = probes.home(wheels, nvcc)
    except OSError as exc:
        return Check("runtime", False, f"cannot lay out a CUDA home for the wheels: "
                     f"{exc.strerror or exc}", "make ~/.cache/jittor writable"), None
    return Check("runtime", True, f"{wheels.describe()} through {home.parent.parent}"), \
        str(home)


_DECISION: Decision | None = None
_ANNOUNCED = False


def status() -> Decision | None:
    """The decision applied in this process (None before Jittor's import through jboat)."""
    return _DECISION


def apply(environ: MutableMapping[str, str] = os.environ, probes: Probes | None = None,
          announce: bool = True) -> Decision:
    """Decide (once per process for ``os.environ``) and set the decision's variables where
    unset; at the first call, say an automatic decision on stderr unless ``announce`` is
    false. Raises :class:`DeviceError` as :func:`decide`."""
    global _DECISION, _ANNOUNCED
    own = environ is os.environ
    decision = _DECISION if own and _DECISION is not None else decide(environ, probes)
    if own:
        _DECISION = decision
    _, ours = users_view(environ)
    for key, value in decision.settings.items():
        if key in ours or key not in environ:  # never a variable of the user's
            environ[key] = value
            ours.add(key)
    if decision.device in ("cpu", "cuda"):
        environ[DECIDED] = decision.device
        environ[SET_BY_JBOAT] = ",".join(sorted(ours))
    if not _ANNOUNCED:  # said at the first call only (doctor asks for silence)
        _ANNOUNCED = True
        rank = environ.get("OMPI_COMM_WORLD_RANK", environ.get("PMI_RANK", "0"))
        if announce and decision.source == "automatic" and rank == "0":  # mpirun: once
            print(decision.line(), file=sys.stderr, flush=True)
    return decision
