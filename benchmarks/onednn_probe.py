"""Does Jittor use oneDNN here, and how fast is a 1000 x 5000 matrix-vector product?

``python -m benchmarks.onednn_probe 1`` (use_mkl=1) or ``... 0``; run it under the lock.
Prints whether ``jittor.compile_extern.mkl_ops`` loaded, then, for ``(A * w).sum(1)``
("bcast") and ``jt.matmul(A, w[:, None])`` ("mm"), the first and median time of the
product and of the gradient of ``||A w||^2``. See benchmarks/README.md for the recipe.
"""

import os
import sys
import time


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    os.environ.update(nvcc_path="", FIX_TORCH_ERROR="0", log_silent="1", use_mpi="0")
    os.environ["use_mkl"] = argv[0] if argv else "1"
    t0 = time.perf_counter()
    import numpy as np

    import jittor as jt
    print("import", round(time.perf_counter() - t0, 1), "s; mkl_ops loaded:",
          jt.compile_extern.mkl_ops is not None, flush=True)
    A = jt.array(np.random.randn(1000, 5000).astype(np.float32))
    w = jt.array(np.random.randn(5000).astype(np.float32))

    def f(mm):
        if mm:
            return jt.matmul(A, w.reshape((-1, 1))).reshape((-1,))
        return (A * w).sum(1)

    for mm in (0, 1):
        ts, gs = [], []
        for _ in range(6):
            t = time.perf_counter()
            f(mm).numpy()
            ts.append(time.perf_counter() - t)
        for _ in range(6):
            t = time.perf_counter()
            jt.grad((f(mm) ** 2).sum(), w).numpy()
            gs.append(time.perf_counter() - t)
        print("mm   " if mm else "bcast", "A w: first %.1f ms, median %.2f ms | grad: first %.1f ms,"
              " median %.2f ms" % (ts[0] * 1e3, np.median(ts[1:]) * 1e3, gs[0] * 1e3,
                                   np.median(gs[1:]) * 1e3), flush=True)
    ref = A.numpy() @ w.numpy()
    print("max abs err (mm)", float(np.abs(f(1).numpy() - ref).max()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
