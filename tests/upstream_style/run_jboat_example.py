"""Run one of JBOAT's own example scripts, unchanged, against jboat on a CPU machine offline.

    python tests/upstream_style/run_jboat_example.py PATH/TO/script.py [script args...]

Only the data sources and the CUDA check are substituted, before the script runs:

* ``sklearn.datasets.fetch_20newsgroups_vectorized`` returns a synthetic sparse TF-IDF-like
  matrix (``JBOAT_FAKE_SAMPLES`` rows, default 400; ``JBOAT_FAKE_FEATURES`` columns,
  default 200; 4 classes) instead of downloading 20newsgroups;
* ``jittor.dataset.CIFAR10`` is a synthetic 32x32 RGB dataset (``JBOAT_FAKE_SAMPLES``
  images, 10 classes) instead of downloading CIFAR-10;
* ``jittor.has_cuda`` reads True (JBOAT's NAS script exits without CUDA), setting
  ``jittor.flags.use_cuda`` is ignored and ``jittor.cudnn`` is a stub.

The script's folder becomes ``sys.path[0]`` and the working directory is left as it is, as
when it is run with ``python script.py``.
"""

from __future__ import annotations

import os
import runpy
import sys

import jboat_core.platform._jittor as _jj  # noqa: E402

_jj.apply_cpu_only_env()

SAMPLES = int(os.environ.get("JBOAT_FAKE_SAMPLES", "400"))
FEATURES = int(os.environ.get("JBOAT_FAKE_FEATURES", "200"))


def fake_20newsgroups(subset="train", return_X_y=False, data_home=None, **kwargs):
    import numpy as np
    import scipy.sparse as sp

    if data_home:
        os.makedirs(data_home, exist_ok=True)
    rng = np.random.RandomState(0 if subset == "train" else 1)
    n, d, c = SAMPLES, FEATURES, 4
    y = np.arange(n) % c
    centres = np.random.RandomState(7).rand(c, d) < 0.1
    dense = (rng.rand(n, d) < 0.05) | (centres[y] & (rng.rand(n, d) < 0.6))
    values = dense * rng.rand(n, d)
    X = sp.csr_matrix(values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-9))
    return (X, y) if return_X_y else {"data": X, "target": y}


def install_fakes() -> None:
    import numpy as np
    import sklearn.datasets
    from PIL import Image

    import jittor as jt
    from jittor.dataset import Dataset

    sklearn.datasets.fetch_20newsgroups_vectorized = fake_20newsgroups

    class FakeCIFAR10(Dataset):
        def __init__(self, root=None, train=True, transform=None, target_transform=None,
                     download=True):
            super().__init__()
            rng = np.random.RandomState(0 if train else 1)
            self.targets = rng.randint(0, 10, SAMPLES)
            self.data = (rng.rand(SAMPLES, 32, 32, 3) * 255).astype(np.uint8)
            self.transform, self.target_transform = transform, target_transform
            self.total_len = SAMPLES

        def __getitem__(self, i):
            img, target = Image.fromarray(self.data[i]), int(self.targets[i])
            if self.transform is not None:
                img = self.transform(img)
            return img, target

        def __len__(self):
            return SAMPLES

    jt.dataset.CIFAR10 = FakeCIFAR10

    class Flags:
        def __init__(self, real):
            object.__setattr__(self, "_real", real)

        def __getattr__(self, name):
            return getattr(self._real, name)

        def __setattr__(self, name, value):
            if name != "use_cuda":
                setattr(self._real, name, value)

    class Cudnn:
        @staticmethod
        def set_max_workspace_ratio(ratio):
            pass

    jt.has_cuda = True
    jt.flags = Flags(jt.flags)
    jt.cudnn = Cudnn()


def main(argv: list[str]) -> None:
    script = os.path.abspath(argv[0])
    install_fakes()
    sys.argv = [script, *argv[1:]]
    sys.path.insert(0, os.path.dirname(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
