"""CPU or CUDA decided before Jittor's import (jboat_core/platform/device.py), on fakes of
each kind of machine: this one (a CUDA 13 nvcc, no runtime, no device), no nvcc, a CUDA 12
toolkit, a CUDA 12 compiler completed by the wheels of ``jboat[cuda12]``; and each setting
forced."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jboat_core.platform import cudawheels, device

ROOT = Path(__file__).resolve().parents[1]
#: Variables of the decision this test process inherited or set (stripped for the fakes).
OURS = ("JBOAT_DEVICE", "JBOAT_CPU_ONLY", device.DECIDED, device.SET_BY_JBOAT,
        "nvcc_path", "use_cuda", "log_silent", "FIX_TORCH_ERROR", "use_mkl")


def fake_nvcc(folder: Path, release: str) -> Path:
    """An executable ``folder/bin/nvcc`` that says it is CUDA ``release``."""
    (folder / "bin").mkdir(parents=True, exist_ok=True)
    nvcc = folder / "bin" / "nvcc"
    nvcc.write_text(f'#!/bin/sh\necho "nvcc: NVIDIA (R) Cuda compiler driver"\n'
                    f'echo "Cuda compilation tools, release {release}, V{release}.1"\n')
    nvcc.chmod(0o755)
    return nvcc


def fake_wheels(root: Path, version: int = 12090, drop: tuple = ()) -> Path:
    """A ``site-packages/nvidia`` folder laid out as the cuda12 extra's wheels are."""
    libs = {"cuda_runtime": ["libcudart.so.12"], "cublas": ["libcublas.so.12",
            "libcublasLt.so.12"], "cudnn": ["libcudnn.so.8", "libcudnn_ops_infer.so.8",
            "libcudnn_ops_train.so.8", "libcudnn_cnn_infer.so.8", "libcudnn_cnn_train.so.8"],
            "curand": ["libcurand.so.10"], "cufft": ["libcufft.so.11"],
            "cusparse": ["libcusparse.so.12"]}
    for component, names in libs.items():
        (root / component / "lib").mkdir(parents=True)
        (root / component / "include").mkdir()
        for name in names:
            if name.split(".so")[0][3:] not in drop:
                (root / component / "lib" / name).write_bytes(b"")
        (root / component / "include" / f"{component}.h").write_text("")
    (root / "cuda_runtime" / "include" / "cuda_runtime_api.h").write_text(
        f"#define CUDART_VERSION {version}\n")
    return root


def probes(tmp_path, devices=0, wheels=None, **kw) -> device.Probes:
    found = device.Devices(devices, f"{devices} device(s) (sm_90)" if devices
                           else "no NVIDIA driver found")
    return device.Probes(devices=lambda: found,
                         wheels=lambda: cudawheels.find([wheels]) if wheels else None,
                         home=lambda w, nvcc: cudawheels.lay_out(
                             cudawheels.home_folder(tmp_path / "homes", w, nvcc), w, nvcc),
                         **kw)


def env(path_dirs=(), **extra) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in OURS}
    return {**clean, "PATH": os.pathsep.join(map(str, path_dirs)), **extra}


@pytest.fixture(autouse=True)
def _no_default_places(monkeypatch):
    """Jittor's fixed places (/usr/local/cuda/bin/nvcc...) are this machine's: not looked at."""
    monkeypatch.setattr(device, "NVCC_PLACES", ())


def test_this_machine_kind_runs_on_the_cpu(tmp_path):
    """A CUDA 13 nvcc on PATH, no runtime beside it, no driver: CPU, said in one line."""
    nvcc = fake_nvcc(tmp_path / "cuda-13.0", "13.0")
    d = device.decide(env([nvcc.parent]), probes(tmp_path))
    assert (d.device, d.source) == ("cpu", "automatic")
    assert d.settings["nvcc_path"] == "" and d.settings["log_silent"] == "1"
    assert "no CUDA device" in d.line() and "\n" not in d.line()
    checks, nvcc_used = device.run_checks(env([nvcc.parent]), probes(tmp_path))
    assert nvcc_used is None and [c.ok for c in checks] == [False, False]
    assert "nvcc 13.0" in checks[1].found and "CUDA 12 compiler" in checks[1].fix
    assert all(c.fix and "\n" not in c.fix for c in checks)


def test_a_device_with_a_cuda13_nvcc_runs_on_the_cpu(tmp_path):
    nvcc = fake_nvcc(tmp_path / "cuda-13.0", "13.0")
    d = device.decide(env([nvcc.parent]), probes(tmp_path, devices=1))
    assert d.device == "cpu" and "nvcc 13.0" in d.reason and "10 to 12" in d.reason


def test_no_nvcc_anywhere(tmp_path):
    d = device.decide(env([tmp_path]), probes(tmp_path, devices=1))
    assert d.device == "cpu" and d.reason.startswith("no nvcc")
    assert "PyPI's CUDA 12 wheels have none" in d.checks[-1].fix


def test_a_cuda12_toolkit_is_used(tmp_path):
    nvcc = fake_nvcc(tmp_path / "cuda-12.4", "12.4")
    (tmp_path / "cuda-12.4" / "lib64").mkdir()
    (tmp_path / "cuda-12.4" / "lib64" / "libcudart.so").write_bytes(b"")
    d = device.decide(env([nvcc.parent]), probes(tmp_path, devices=1))
    assert (d.device, d.source) == ("cuda", "automatic")
    assert d.settings == {"nvcc_path": str(nvcc), "use_cuda": "1", "log_silent": "1"}
    assert d.line().startswith("jboat: CUDA: 1 device(s)")


def test_a_cuda12_compiler_without_runtime_is_completed_by_the_wheels(tmp_path):
    """The runtime is missing where Jittor loads it; the cuda12 wheels are installed: a
    CUDA home of the compiler and the wheels, whose bin/nvcc runs the compiler."""
    nvcc = fake_nvcc(tmp_path / "cuda-12.4", "12.4")
    wheels = fake_wheels(tmp_path / "site" / "nvidia")
    d = device.decide(env([nvcc.parent]), probes(tmp_path, devices=1, wheels=wheels))
    assert d.device == "cuda", d
    home = Path(d.settings["nvcc_path"]).parent.parent
    assert home.parent == tmp_path / "homes" and "CUDA 12.9 wheels" in d.reason
    out = subprocess.run([str(home / "bin" / "nvcc"), "--version"], capture_output=True,
                         text=True).stdout
    assert "release 12.4" in out
    assert device.jittor_runtime(str(home / "bin" / "nvcc")) == home / "lib64" / "libcudart.so"
    for name in cudawheels.LIBRARIES:  # what Jittor searches: lib<name>.so, unversioned
        assert (home / "lib64" / f"lib{name}.so").resolve().parent.parent.parent == wheels
    assert (home / "lib64" / "libcudart.so.12").exists()
    assert (home / "include" / "cuda_runtime_api.h").exists()
    again = device.decide(env([nvcc.parent]), probes(tmp_path, devices=1, wheels=wheels))
    assert again.settings == d.settings  # the home is reused


def test_incomplete_or_other_major_wheels_are_not_used(tmp_path):
    nvcc = fake_nvcc(tmp_path / "cuda-12.4", "12.4")
    partial = fake_wheels(tmp_path / "a" / "nvidia", drop=("cudnn_cnn_train",))
    d = device.decide(env([nvcc.parent]), probes(tmp_path, devices=1, wheels=partial))
    assert d.device == "cpu" and "missing: cudnn_cnn_train" in d.reason
    nvcc11 = fake_nvcc(tmp_path / "cuda-11.8", "11.8")
    whole = fake_wheels(tmp_path / "b" / "nvidia")
    d = device.decide(env([nvcc11.parent]), probes(tmp_path, devices=1, wheels=whole))
    assert d.device == "cpu" and "do not fit nvcc 11.8" in d.reason


def test_a_cuda12_compiler_without_runtime_or_wheels_names_the_extra(tmp_path):
    nvcc = fake_nvcc(tmp_path / "cuda-12.4", "12.4")
    d = device.decide(env([nvcc.parent]), probes(tmp_path, devices=1))
    assert d.device == "cpu" and "no CUDA runtime" in d.reason
    assert "pip install 'jboat[cuda12]'" in d.checks[-1].fix


def _refuse():
    raise AssertionError("a forced CPU must not probe the machine")


@pytest.mark.parametrize("setting", [{"JBOAT_DEVICE": "cpu"}, {"JBOAT_DEVICE": "CPU"},
                                     {"JBOAT_CPU_ONLY": "1"}])
def test_cpu_forced_probes_nothing(tmp_path, setting):
    d = device.decide(env(**setting), device.Probes(devices=_refuse, find_nvcc=_refuse))
    assert d.device == "cpu" and d.source != "automatic" and d.settings["nvcc_path"] == ""


def test_cuda_forced_where_it_cannot_work_names_all_that_is_missing(tmp_path):
    nvcc = fake_nvcc(tmp_path / "cuda-13.0", "13.0")
    with pytest.raises(device.DeviceError) as err:
        device.decide(env([nvcc.parent], JBOAT_DEVICE="cuda"), probes(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("JBOAT_DEVICE=cuda, but")
    assert "no CUDA device" in msg and "nvcc 13.0" in msg and "jboat doctor" in msg
    with pytest.raises(device.DeviceError, match="use_cuda=1, but"):
        device.decide(env([nvcc.parent], use_cuda="1"), probes(tmp_path))


def test_cuda_forced_where_it_works(tmp_path):
    nvcc = fake_nvcc(tmp_path / "cuda-12.2", "12.2")
    (tmp_path / "cuda-12.2" / "lib64").mkdir()
    (tmp_path / "cuda-12.2" / "lib64" / "libcudart.so").write_bytes(b"")
    d = device.decide(env([nvcc.parent], JBOAT_DEVICE="cuda"), probes(tmp_path, devices=2))
    assert (d.device, d.source) == ("cuda", "JBOAT_DEVICE=cuda")


@pytest.mark.parametrize("setting, match", [
    ({"JBOAT_DEVICE": "gpu"}, "not a device: use cpu, cuda or auto"),
    ({"JBOAT_DEVICE": "cuda", "JBOAT_CPU_ONLY": "1"}, "contradict"),
    ({"JBOAT_DEVICE": "cuda", "nvcc_path": ""}, "nvcc_path is set empty")])
def test_bad_requests_are_one_line_errors(tmp_path, setting, match):
    with pytest.raises(device.DeviceError, match=match) as err:
        device.decide(env(**setting), probes(tmp_path))
    assert "\n" not in str(err.value)


def test_the_users_own_jittor_variables_win(tmp_path):
    d = device.decide(env(nvcc_path="/opt/my/nvcc"), device.Probes(devices=_refuse))
    assert d.device == "jittor" and d.settings == {}
    d = device.decide(env(nvcc_path=""), device.Probes(devices=_refuse))
    assert d.device == "cpu" and "yours" in d.source
    e = env([tmp_path], log_silent="0", FIX_TORCH_ERROR="1")
    device.apply(e, probes(tmp_path), announce=False)
    assert (e["log_silent"], e["FIX_TORCH_ERROR"], e["nvcc_path"]) == ("0", "1", "")


def test_apply_says_an_automatic_decision_once_and_children_inherit_it(tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setattr(device, "_ANNOUNCED", False)
    e = env([tmp_path])
    device.apply(e, probes(tmp_path))
    device.apply(env([tmp_path]), probes(tmp_path))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("jboat: running on the CPU: no CUDA device")
    assert e[device.DECIDED] == "cpu"
    child = device.decide(e, device.Probes(devices=_refuse))
    assert (child.device, child.source) == ("cpu", "the parent process")
    monkeypatch.setattr(device, "_ANNOUNCED", False)
    device.apply(env([tmp_path], JBOAT_DEVICE="cpu"), probes(tmp_path))
    assert capsys.readouterr().err == ""  # forced: nothing to say


def test_a_child_may_ask_for_another_device_than_its_parent(tmp_path):
    """The parent decided CPU and set nvcc_path= etc.; a child started with
    JBOAT_DEVICE=cuda is decided afresh and its settings replace the parent's (only those:
    the user's own log_silent stays)."""
    parent = env([tmp_path], log_silent="0")
    device.apply(parent, probes(tmp_path), announce=False)
    assert parent[device.SET_BY_JBOAT] == "FIX_TORCH_ERROR,nvcc_path"
    nvcc = fake_nvcc(tmp_path / "cuda-12.4", "12.4")
    (tmp_path / "cuda-12.4" / "lib64").mkdir()
    (tmp_path / "cuda-12.4" / "lib64" / "libcudart.so").write_bytes(b"")
    child = {**parent, "PATH": str(nvcc.parent), "JBOAT_DEVICE": "cuda"}
    d = device.apply(child, probes(tmp_path, devices=1), announce=False)
    assert (d.device, d.source) == ("cuda", "JBOAT_DEVICE=cuda")
    assert (child["nvcc_path"], child["use_cuda"], child["log_silent"]) == (str(nvcc), "1", "0")
    assert child[device.DECIDED] == "cuda"


def test_the_decision_is_fast_and_never_imports_jittor(tmp_path):
    nvcc = fake_nvcc(tmp_path / "cuda-13.0", "13.0")
    code = ("import sys, time; t = time.perf_counter()\n"
            "from jboat_core.platform import device\n"
            "d = device.decide(); dt = time.perf_counter() - t\n"
            "assert 'jittor' not in sys.modules, 'jittor imported'\n"
            "print(d.device, round(dt, 3))")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**env([nvcc.parent, Path(sys.executable).parent]),
                               "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "cpu" and float(proc.stdout.split()[1]) < 0.5
    assert time.perf_counter() - start < 10


FAKE_DRIVER = r"""
int cuDriverGetVersion(int *v) { *v = 12040; return 0; }
int cuInit(unsigned flags) { return INIT; }
int cuDeviceGetCount(int *n) { *n = COUNT; return 0; }
int cuDeviceGet(int *d, int i) { *d = i; return 0; }
int cuDeviceGetAttribute(int *v, int attr, int d) {
    *v = attr == 75 ? (d == 0 ? 9 : 8) : 0; return 0; }
"""


@pytest.mark.skipif(not shutil.which("gcc"), reason="no gcc to build a fake driver")
@pytest.mark.parametrize("init, count, expected", [
    (0, 2, device.Devices(2, "2 device(s) (sm_90, sm_80), driver for CUDA 12.4")),
    (0, 0, device.Devices(0, "the NVIDIA driver reports no device")),
    (100, 1, device.Devices(0, "the NVIDIA driver failed to start (cuInit error 100)"))])
def test_the_driver_probe_reads_what_a_driver_says(tmp_path, init, count, expected):
    """The child-process query against a fake ``libcuda.so.1`` (built here with gcc)."""
    src = tmp_path / "cuda.c"
    src.write_text(FAKE_DRIVER.replace("INIT", str(init)).replace("COUNT", str(count)))
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "libcuda.so.1"),
                    str(src)], check=True)
    sign = tmp_path / "nvidiactl"
    sign.write_text("")
    found = device.driver_devices((str(sign),), {**os.environ,
                                                 "LD_LIBRARY_PATH": str(tmp_path)})
    assert found == expected


def test_the_real_driver_probe_answers_without_cuda():
    """On this kind of machine: no driver, answered from the file system alone."""
    found = device.driver_devices()
    assert isinstance(found.count, int) and found.text
    if not any(os.path.exists(p) for p in device.DRIVER_SIGNS):
        assert found == device.Devices(0, "no NVIDIA driver found")


def test_installed_cuda_wheels_have_the_layout_jittor_needs(tmp_path):
    """Where the cuda12 extra is installed (or ``JBOAT_CUDA_WHEELS`` names an ``nvidia``
    folder): every library Jittor loads is found and laid out."""
    given = os.environ.get("JBOAT_CUDA_WHEELS")
    wheels = cudawheels.find([Path(given)] if given else None)
    if wheels is None:
        pytest.skip("the cuda12 extra is not installed (pip install 'jboat[cuda12]')")
    assert wheels.complete, wheels.describe()
    assert wheels.version[0] == 12
    nvcc = fake_nvcc(tmp_path / "cuda-12.9", "12.9")
    home = cudawheels.lay_out(tmp_path / "home", wheels, str(nvcc)).parent.parent
    for name in cudawheels.LIBRARIES:
        assert (home / "lib64" / f"lib{name}.so").resolve().is_file(), name
    for header in ("cuda_runtime.h", "cublas_v2.h", "cudnn.h", "curand.h", "cufft.h",
                   "cusparse.h", "cub", "thrust", "crt"):
        assert (home / "include" / header).exists(), header
