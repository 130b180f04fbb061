"""``python tests/mpi_run.py OUTDIR CASE [CASE ...]`` (alone, or under ``mpirun -np N``):
run the cases of ``mpi_cases`` one after the other in this process; rank 0 writes
``OUTDIR/CASE.npz`` with the arrays and the number of processes. One process (or one
mpirun) for all cases: Jittor's start-up is paid once, not once per case."""

import os
import sys

os.environ.setdefault("JBOAT_LOAD_PLUGINS", "jboat")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import mpi_cases  # noqa: E402
from jboat_core.testing.problems import jt  # noqa: E402

world = jt.world_size if getattr(jt, "in_mpi", False) else 1
for case in sys.argv[2:]:
    out = mpi_cases.run(case)
    if not getattr(jt, "in_mpi", False) or jt.rank == 0:
        np.savez(os.path.join(sys.argv[1], case + ".npz"), world=np.array([world]), **out)
