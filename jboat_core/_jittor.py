"""The one place jboat imports Jittor (lazily), with the documented CPU/offline switch.

``JBOAT_CPU_ONLY=1`` sets, *before* the first ``import jittor`` and only where the variable
is not already set: ``nvcc_path=`` (no CUDA probing: a stray nvcc without a CUDA runtime
makes the import fail), ``use_mkl=0`` (no oneDNN download), ``FIX_TORCH_ERROR=0`` (no torch
import) and ``log_silent=1``. Users with a working GPU leave it unset.
"""

from __future__ import annotations

import os
import sys

CPU_ONLY_DEFAULTS = {"nvcc_path": "", "use_mkl": "0", "FIX_TORCH_ERROR": "0", "log_silent": "1"}


def apply_cpu_only_env() -> None:
    """Apply ``CPU_ONLY_DEFAULTS`` if ``JBOAT_CPU_ONLY=1`` and Jittor is not imported yet."""
    if os.environ.get("JBOAT_CPU_ONLY", "") not in ("", "0") and "jittor" not in sys.modules:
        for key, value in CPU_ONLY_DEFAULTS.items():
            os.environ.setdefault(key, value)


def jittor():
    """Return the ``jittor`` module, importing it on first use.

    Importing Jittor installs a C signal handler that ends the process at once on Ctrl-C
    (``Caught SIGINT, quick exit``): nothing in Python runs, so a run could not record why
    it stopped. jboat gives Ctrl-C back to Python (``KeyboardInterrupt``) when it imports
    Jittor from the main thread; ``jboat run`` then writes ``metrics.json`` with
    ``"status": "interrupted"`` before exiting.
    """
    mod = sys.modules.get("jittor")
    if mod is not None:
        return mod
    apply_cpu_only_env()
    import jittor as jt
    _python_sigint()
    return jt


def _python_sigint() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)
