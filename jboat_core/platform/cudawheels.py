"""CUDA 12 runtime and libraries from PyPI's wheels (``pip install 'jboat[cuda12]'``).

NVIDIA publishes CUDA 12's runtime and libraries as wheels that install under
``site-packages/nvidia/<component>/{include,lib}``: ``cuda_runtime`` (``libcudart.so.12``),
``cublas``, ``cudnn`` (8.9, the last cuDNN whose library names Jittor 1.3.11 loads),
``curand``, ``cufft``, ``cusparse``, ``cuda_cccl`` (CUB/Thrust headers) and ``cuda_nvcc``.
**The CUDA 12 ``cuda_nvcc`` wheels carry no compiler driver**: ``bin/`` holds ``ptxas`` only
(checked for 12.2.140, 12.4.131, 12.6.85, 12.8.93 and 12.9.86, and for CUDA 11.8's), no
``nvcc``, ``cicc``, ``cudafe++`` or ``fatbinary``; PyPI's full ``nvcc`` is CUDA 13's, which
Jittor 1.3.11 cannot build with. Jittor compiles its core and every kernel with ``nvcc``,
so the wheels complete a CUDA 12 compiler found on the machine (e.g. NVIDIA's
``cuda-nvcc-12-x`` package, which brings no runtime, cuBLAS or cuDNN); they cannot replace it.

Jittor looks for everything beside ``nvcc``: headers in ``<nvcc>/../include``, libraries
as unversioned ``lib<name>.so`` in ``<nvcc>/../lib64``, where ``<nvcc>`` is the resolved
path of the executable. :func:`lay_out` builds such a folder (a CUDA home) from the wheels:
``bin/nvcc`` a two-line script that runs the machine's CUDA 12 ``nvcc`` (a link would be
resolved back to the compiler's own folder), ``include/`` and ``lib64/`` links to the
wheels' files, ``lib<name>.so`` beside each ``lib<name>.so.N``. Nothing here imports Jittor.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

#: The wheels of the ``cuda12`` extra, by component folder under ``nvidia/``.
COMPONENTS = ("cuda_runtime", "cuda_nvcc", "cuda_cccl", "cublas", "cudnn", "curand", "cufft",
              "cusparse", "nvjitlink")
#: The libraries Jittor 1.3.11 loads when it builds with CUDA (a missing one stops its import).
LIBRARIES = ("cudart", "cublas", "cublasLt", "cudnn", "cudnn_ops_infer", "cudnn_ops_train",
             "cudnn_cnn_infer", "cudnn_cnn_train", "curand", "cufft", "cusparse")
EXTRA = "pip install 'jboat[cuda12]'"


@dataclass(frozen=True)
class CudaWheels:
    """The CUDA wheels found in an environment.

    Attributes
    ----------
    root : Path
        The ``nvidia`` folder.
    version : tuple of int
        The runtime's CUDA version ``(major, minor)``, from ``cuda_runtime_api.h``.
    missing : tuple of str
        Libraries of :data:`LIBRARIES` that no wheel provides (Jittor's import needs all).
    """

    root: Path
    version: tuple[int, int]
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """Whether every library Jittor loads is there."""
        return not self.missing

    def describe(self) -> str:
        """One line: which CUDA, where, what is missing."""
        where = f"CUDA {self.version[0]}.{self.version[1]} wheels in {self.root}"
        return where + (f" (missing: {', '.join(self.missing)}; {EXTRA})" if self.missing
                        else "")


def nvidia_folders() -> list[Path]:
    """The ``nvidia`` namespace folders on ``sys.path`` (found without importing them)."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    return [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


def runtime_version(root: Path) -> tuple[int, int] | None:
    """``CUDART_VERSION`` of the runtime wheel under ``root`` as ``(major, minor)``."""
    try:
        text = (root / "cuda_runtime" / "include" / "cuda_runtime_api.h").read_text(
            errors="replace")
    except OSError:
        return None
    found = re.search(r"#define\s+CUDART_VERSION\s+(\d+)", text)
    return (int(found.group(1)) // 1000, int(found.group(1)) % 1000 // 10) if found else None


def _libraries(root: Path) -> dict[str, Path]:
    """``{"cudart": .../libcudart.so.12, ...}``: every versioned library of the wheels."""
    found = {}
    for component in sorted(p for p in root.iterdir() if p.is_dir()):
        for lib in sorted((component / "lib").glob("lib*.so.*")):
            found.setdefault(lib.name.split(".so.")[0][3:], lib)
    return found


def find(folders: list[Path] | None = None) -> CudaWheels | None:
    """The CUDA runtime wheels of this environment (None: not installed)."""
    for root in (nvidia_folders() if folders is None else folders):
        version = runtime_version(root)
        if version is None:
            continue
        libs = _libraries(root)
        return CudaWheels(root, version, tuple(n for n in LIBRARIES if n not in libs))
    return None


def home_folder(base: Path, wheels: CudaWheels, nvcc: str) -> Path:
    """Where :func:`lay_out` puts the CUDA home for this compiler and these wheels."""
    key = hashlib.sha256(f"{Path(nvcc).resolve()}\0{wheels.root.resolve()}".encode())
    return base / f"cuda{wheels.version[0]}.{wheels.version[1]}-{key.hexdigest()[:10]}"


def lay_out(folder: Path, wheels: CudaWheels, nvcc: str) -> Path:
    """Build (once) a CUDA home in ``folder`` that runs ``nvcc`` with the wheels' headers
    and libraries; returns its ``bin/nvcc``.

    Built in a temporary folder beside it and renamed into place, so a half-built home is
    never used; a complete one (``.complete``) is reused. Raises ``OSError`` when the
    folder cannot be written.
    """
    if (folder / ".complete").is_file():
        return folder / "bin" / "nvcc"
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _build(tmp, wheels, nvcc)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process renamed its own build into place first
            if not (folder / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / "bin" / "nvcc"


def _build(tmp: Path, wheels: CudaWheels, nvcc: str) -> None:
    (tmp / "bin").mkdir(parents=True)
    (tmp / "include").mkdir()
    (tmp / "lib64").mkdir()
    script = tmp / "bin" / "nvcc"
    script.write_text(f'#!/bin/sh\nexec "{Path(nvcc).resolve()}" "$@"\n')
    script.chmod(0o755)
    own_include = Path(nvcc).resolve().parent.parent / "include"
    for src in [own_include, *(wheels.root / c / "include" for c in COMPONENTS)]:
        for entry in sorted(src.glob("*")) if src.is_dir() else ():
            link = tmp / "include" / entry.name
            if not link.exists() and entry.name not in ("__init__.py", "__pycache__"):
                link.symlink_to(entry.resolve())
    for name, lib in _libraries(wheels.root).items():
        for link in (tmp / "lib64" / lib.name, tmp / "lib64" / f"lib{name}.so"):
            if not link.exists():
                link.symlink_to(lib.resolve())
    (tmp / ".complete").write_text(f"{wheels.describe()}\nnvcc {nvcc}\n")
