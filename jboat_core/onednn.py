"""Download-free oneDNN for Jittor on CPU (``jboat setup-onednn``).

Jittor 1.3.11 with ``use_mkl=1`` downloads ``dnnl_lnx_2.2.0_cpu_gomp`` unless that folder
already exists in its cache, and its ``mkl_include_path``/``mkl_lib_path`` variables fail
(``UnboundLocalError``). Debian's ``libdnnl-dev`` works when the folder is laid out with
symlinks: ``include -> /usr/include`` and ``lib/libmkldnn.so -> libdnnl.so``. Measured
(benchmarks/README.md): 2-D ``jt.matmul`` products 3-9x faster, whole hyper-iterations on a
5,000-parameter ridge problem 2-3.7x faster. Only 2-D x 2-D ``jt.matmul`` uses it.
"""

from __future__ import annotations

import ctypes.util
import os
from pathlib import Path

FOLDER = "dnnl_lnx_2.2.0_cpu_gomp"
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")


def find_dnnl() -> Path | None:
    """The installed ``libdnnl.so`` (Debian: ``apt-get install libdnnl-dev``), if any."""
    for d in LIB_DIRS:
        p = Path(d) / "libdnnl.so"
        if p.exists():
            return p
    name = ctypes.util.find_library("dnnl")
    return Path(name) if name and os.path.isabs(name) else None


def setup_onednn(cache_dir: Path, lib: Path | None = None,
                 include: Path = Path("/usr/include")) -> Path:
    """Lay out ``cache_dir/mkl/<FOLDER>`` so Jittor finds the local oneDNN; returns it."""
    lib = lib or find_dnnl()
    if lib is None or not Path(lib).exists():
        raise FileNotFoundError("libdnnl.so not found: install oneDNN first "
                                "(Debian/Ubuntu: apt-get install libdnnl-dev)")
    if not (Path(include) / "dnnl.h").exists():
        raise FileNotFoundError(f"{include}/dnnl.h not found: install the oneDNN headers "
                                "(libdnnl-dev)")
    target = Path(cache_dir) / "mkl" / FOLDER
    (target / "lib").mkdir(parents=True, exist_ok=True)
    for link, dest in ((target / "include", Path(include)),
                       (target / "lib" / "libmkldnn.so", Path(lib))):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(dest)
    return target
