"""``python tests/mpi_run.py CASE OUT.npz`` (alone, or under ``mpirun -np N``): run one
case of ``mpi_cases``; rank 0 writes the arrays, and the number of processes."""

import os
import sys

os.environ.setdefault("JBOAT_CPU_ONLY", "1")
os.environ.setdefault("JBOAT_LOAD_PLUGINS", "jboat")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import mpi_cases  # noqa: E402
from jboat_core.testing.problems import jt  # noqa: E402

out = mpi_cases.run(sys.argv[1])
if not getattr(jt, "in_mpi", False) or jt.rank == 0:
    np.savez(sys.argv[2], world=np.array([jt.world_size if getattr(jt, "in_mpi", False) else 1]),
             **out)
