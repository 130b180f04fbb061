"""``tests/fault_task.py``'s ridge task with more ways to misbehave, for
``tests/test_adversarial_files.py``. Parameters: ``chdir`` (a folder ``build`` changes
into), ``exit_in`` (``"feeds"`` or ``"ul_objective"``: ``sys.exit(0)`` there),
``raise_at`` (``ul_objective`` raises from that outer iteration on), ``thread``
(``build`` starts a non-daemon thread that never ends), ``empty`` (feeds of no
examples), ``mismatch`` (the upper feed's matrix has a wrong number of columns),
``sleep`` (seconds per iteration), ``detach`` (a file: ``build`` starts a child in its
own session that keeps the process's stdout and stderr open for 10 minutes, and writes
its PID there), ``atexit_exit`` (an ``atexit`` handler calls ``os._exit`` with that code). The
environment variable ``FAULT_TERM_AT`` makes the
process send itself SIGTERM at that iteration (not a parameter: a resumed run keeps
the same fingerprint)."""

import atexit
import os
import signal
import subprocess
import sys
import threading
import time

import jittor as jt
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_task  # noqa: E402 - next to this file


def _swallowed_term():
    """A SIGTERM whose exception the task's code turns into another one, as an extension
    module's import does ("ImportError: initialization failed")."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    except BaseException:  # noqa: BLE001 - on purpose: what a C extension's init does
        raise ImportError("initialization failed") from None


def build(params, seed):
    if params.get("chdir"):
        os.chdir(params["chdir"])
    if params.get("detach"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                 start_new_session=True)  # stdout, stderr inherited
        with open(params["detach"], "w") as fh:
            fh.write(str(child.pid))
    if "atexit_exit" in params:
        atexit.register(os._exit, int(params["atexit_exit"]))
    if params.get("thread"):
        threading.Thread(target=lambda: time.sleep(10**6), name="left-by-task").start()
    if params.get("swallow_term") == "build":
        _swallowed_term()
    task = fault_task.build({"sleep": params.get("sleep", 0)}, seed)
    feeds, ul_objective = task.feeds, task.ul_objective
    term_at = int(os.environ.get("FAULT_TERM_AT", "-1"))
    state = {"it": 0}

    def my_feeds(it):
        state["it"] = it
        if it == term_at:
            os.kill(os.getpid(), signal.SIGTERM)
        if params.get("swallow_term") == "feeds" and it == 1:
            _swallowed_term()
        if params.get("exit_in") == "feeds":
            sys.exit(0)
        ll, ul = feeds(it)
        if params.get("empty"):
            ll = {k: jt.array(v.numpy()[:0]) for k, v in ll.items()}
        if params.get("mismatch"):
            ul = {k: jt.array(np.concatenate([v.numpy()] * 2, axis=-1)) if v.ndim == 2 else v
                  for k, v in ul.items()}
        return ll, ul

    def my_ul_objective(feed, ul, ll, **kw):
        if params.get("exit_in") == "ul_objective":
            sys.exit(0)
        if 0 <= params.get("raise_at", -1) <= state["it"]:
            raise ValueError("the upper objective broke on purpose")
        return ul_objective(feed, ul, ll, **kw)

    task.feeds, task.ul_objective = my_feeds, my_ul_objective
    return task
