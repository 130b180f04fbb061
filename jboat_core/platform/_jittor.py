"""The one place jboat imports Jittor (lazily): oneDNN, the CPU/offline switch, MPI checks.

Before the first ``import jittor`` through jboat:

* **oneDNN** (:mod:`jboat_core.platform.onednn`): where PyPI's oneDNN wheels are installed (x86-64
  Linux), Jittor's oneDNN folder is laid out, ``libdnnl`` loaded and ``use_mkl=1`` set
  unless you set ``use_mkl`` yourself. Nothing to run first; ``jboat doctor`` says what was
  done and why.
* **CPU or CUDA** (:mod:`jboat_core.platform.device`): jboat decides whether Jittor's CUDA
  path can work here (a device, an ``nvcc`` of CUDA <= 12, a CUDA runtime, or the CUDA 12
  wheels of ``jboat[cuda12]``) and otherwise applies the CPU settings itself (``nvcc_path=``
  empty, ``FIX_TORCH_ERROR=0``, ``log_silent=1``; ``use_mkl=0`` only when no local oneDNN
  could be set up, since Jittor would download one), saying so in one line on stderr.
  ``JBOAT_DEVICE=cpu|cuda`` forces a choice (``JBOAT_CPU_ONLY=1`` is ``JBOAT_DEVICE=cpu``);
  your own Jittor variables win.
* **MPI**: a process started by ``mpirun`` whose Jittor cannot build its MPI ops (no
  ``mpicc``, or ``use_mpi=0``) gets :class:`JittorSetupError` naming what to install,
  instead of the ``AttributeError`` Jittor's own import raises.
* **Ctrl-C stays Python's**: Jittor's C library installs a handler that ends the process
  on SIGINT with exit code 0 ("Caught SIGINT, quick exit") each time a library of its is
  loaded (at import, and again when a kernel library is first loaded: seen on a cold
  cache), unless ``JPY_PARENT_PID`` is set (it leaves SIGINT to Jupyter then). jboat sets
  ``JPY_PARENT_PID`` to its own PID where it is not set, so Ctrl-C raises
  ``KeyboardInterrupt`` (and ``jboat run`` records "interrupted") at any time, during the
  import too. Nothing else reads it but a Jupyter kernel started from this process, whose
  parent it then names correctly.
* **Two corrections to Jittor's C++ source** (:mod:`jboat_core.platform.jittorfix`): a
  one-element constant's kernel cached without its dtype (float32 and float64 runs in one
  process gave garbage) and ``mean``'s float32 backward factor. Applied once, before the
  import that compiles them; ``jboat doctor`` says whether they are in force.
* NumPy's float limits are computed first: Jittor's kernels are built with ``-ffast-math``,
  whose start-up code switches the CPU to flush denormals to zero; a ``np.finfo`` built
  after that warns "The value of the smallest subnormal ... is zero" (matplotlib and
  scikit-learn build them at import). Built before, they are right and cached.
"""

from __future__ import annotations

import os
import shutil
import sys

from ..errors import JittorSetupError
from . import device

CPU_ONLY_DEFAULTS = device.CPU_SETTINGS  # the name earlier versions exported
MPI_HINT = ("install OpenMPI with its compiler wrapper (Debian/Ubuntu: apt-get install "
            "openmpi-bin libopenmpi-dev) so that Jittor builds its MPI ops at import, then "
            "run again")


__all__ = ["JittorSetupError", "apply_device", "jittor", "mpi_problem", "prepare_environment"]


def apply_device() -> device.Decision | None:
    """Decide CPU or CUDA and set Jittor's variables, if Jittor is not imported yet
    (None: it is, and nothing can change)."""
    if "jittor" in sys.modules:
        return None
    return device.apply()


apply_cpu_only_env = apply_device  # the name earlier versions exported


def cpu_only() -> bool:
    """Whether jboat decided (or was told) to run Jittor on the CPU in this process."""
    decided = device.status()
    return decided is not None and decided.device == "cpu"


def mpi_problem(environ=os.environ) -> str | None:
    """Why Jittor's import would fail under this MPI launch (None: it would not).

    Jittor treats a process as an MPI rank when ``OMPI_COMM_WORLD_SIZE`` is set and then
    needs its MPI ops, which it builds only with ``mpicc`` found and ``use_mpi`` not 0.
    """
    if "OMPI_COMM_WORLD_SIZE" not in environ:
        return None
    if environ.get("use_mpi", "1") != "1":
        return "use_mpi is not 1"
    mpicc = environ["mpicc_path"] if "mpicc_path" in environ else shutil.which("mpicc")
    if not mpicc:
        return "mpicc was not found"
    return None


def prepare_environment() -> None:
    """Everything done before Jittor's import (see the module docstring); idempotent."""
    from . import onednn

    from . import jittorfix

    apply_device()
    os.environ.setdefault("JPY_PARENT_PID", str(os.getpid()))  # SIGINT stays Python's
    if jittorfix.states() is None:
        _warn_unfixed(jittorfix.apply(), imported=False)
    if onednn.status() is None:
        onednn.prepare()
    if cpu_only():
        os.environ.setdefault("use_mkl", "0")
    _compute_float_limits()


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class JittorFixWarning(RuntimeWarning):
    """Jittor runs without jboat's corrections (float32 and float64 in one process are
    then unsafe)."""


def _warn_unfixed(states, imported: bool) -> None:
    """One warning per process when a correction is not in force."""
    import warnings

    missing = [s for s in states if not s.active or (imported and s.state == "applied")]
    if not missing:
        return
    why = "; ".join(f"{s.name}: {s.reason}" for s in missing)
    if imported and all(s.active for s in states):
        why = ("Jittor was imported before jboat, so the corrections jboat just wrote take "
               "effect in the next process")
    warnings.warn(f"Jittor runs without jboat's corrections ({why}): do not mix float32 and "
                  "float64 computations in this process (see `jboat doctor`)",
                  JittorFixWarning, stacklevel=3)


_FIXES_SEEN = False


def _check_fixes_after_user_import() -> None:
    """Jittor was imported by the user first: write the corrections for the next process
    and say whether this one has them (once)."""
    from . import jittorfix

    global _FIXES_SEEN
    _FIXES_SEEN = True
    if jittorfix.states() is None:
        _warn_unfixed(jittorfix.apply(), imported=True)


def _compute_float_limits() -> None:
    import numpy as np

    for dtype in (np.float16, np.float32, np.float64, np.longdouble):
        np.finfo(dtype)


def jittor():
    """Return the ``jittor`` module, importing it on first use.

    Importing Jittor installs a C signal handler that ends the process at once on Ctrl-C
    (``Caught SIGINT, quick exit``): nothing in Python runs, so a run could not record why
    it stopped. jboat puts back the disposition Python records when it imports Jittor from
    the main thread (:func:`jboat_core.platform.signals.after_jittor_import`: ``KeyboardInterrupt``,
    or still ignored in a process started with SIGINT ignored); ``jboat run`` then writes
    ``metrics.json`` with ``"status": "interrupted"`` before exiting.

    Raises
    ------
    JittorSetupError
        Started by mpirun where Jittor has no MPI; ``JBOAT_DEVICE=cuda`` where CUDA cannot
        work (:class:`~jboat_core.platform.device.DeviceError`); Jittor's import failed.
    """
    mod = sys.modules.get("jittor")
    if mod is not None:
        if not _FIXES_SEEN:
            _check_fixes_after_user_import()
        return mod
    why = mpi_problem()
    if why:
        raise JittorSetupError(f"started by mpirun but Jittor has no MPI ({why}): {MPI_HINT}")
    prepare_environment()
    try:
        import jittor as jt
    except AttributeError as exc:  # Jittor's import under mpirun without its MPI ops
        if "OMPI_COMM_WORLD_SIZE" in os.environ:
            raise JittorSetupError(f"started by mpirun but Jittor's MPI failed to load "
                                   f"({exc}): {MPI_HINT}") from None
        raise
    except (OSError, RuntimeError) as exc:  # a CUDA or compiler problem inside Jittor
        raise JittorSetupError(f"Jittor's import failed ({type(exc).__name__}: "
                               f"{_first_line(exc)}): run `jboat doctor` to see what Jittor "
                               "finds here (JBOAT_DEVICE=cpu keeps CUDA out)") from exc
    from .signals import after_jittor_import
    after_jittor_import()
    return jt

