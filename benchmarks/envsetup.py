"""The environment of a benchmark worker, set before Jittor or torch is imported.

* jboat and ``bare`` (hand-written Jittor) import Jittor through jboat's set-up: oneDNN
  from PyPI on by default (``jboat_core.platform._jittor.prepare_environment``), as a user gets it.
* JBOAT (``boatjit``) runs as a user installs it on this offline machine: ``use_mkl=0``
  (Jittor would download oneDNN otherwise), unless the run sets ``use_mkl`` itself (the
  "JBOAT + the same oneDNN" variant: ``use_mkl=1`` with ``LD_PRELOAD`` of jboat's
  ``libdnnl.so.2``).
* Threads: ``OMP_NUM_THREADS`` (default 1) is what oneDNN's OpenMP uses and what BOAT's
  torch is given (:func:`threads`); Jittor's own kernels are single-threaded.
"""

from __future__ import annotations

import os

COMMON = {"nvcc_path": "", "FIX_TORCH_ERROR": "0", "log_silent": "1", "use_mpi": "0",
          "JBOAT_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}


def prepare(framework: str) -> None:
    """Set the worker's environment for ``framework`` (jboat, bare, boatjit, boattorch)."""
    for key, value in COMMON.items():
        os.environ.setdefault(key, value)
    if framework in ("jboat", "bare"):
        from jboat_core.platform._jittor import prepare_environment
        prepare_environment()
    else:
        os.environ.setdefault("use_mkl", "0")


def threads() -> int:
    """The thread count every framework gets (``OMP_NUM_THREADS``)."""
    return max(1, int(os.environ.get("OMP_NUM_THREADS") or 1))


def describe() -> dict:
    """What the worker ran with: threads, use_mkl, and whether Jittor's oneDNN ops loaded."""
    import sys
    jt = sys.modules.get("jittor")
    mkl = bool(jt is not None and getattr(jt.compile_extern, "mkl_ops", None) is not None)
    return {"threads": threads(), "use_mkl": os.environ.get("use_mkl"), "onednn_ops": mkl}
