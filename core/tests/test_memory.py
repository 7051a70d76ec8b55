"""The memory probe: real resident memory on Linux, a fake procfs and a fake torch for the rest."""

import subprocess
import sys
import types

import numpy as np
import pytest
from sextant.memory import MemoryProbe, MemoryReading

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")

STATUS = "Name:\tpython\nVmPeak:\t  900000 kB\nVmHWM:\t  307200 kB\nVmRSS:\t  102400 kB\nThreads:\t1\n"


@linux
def test_the_peak_follows_an_allocation_and_resets():
    probe = MemoryProbe()
    probe.reset()
    before = probe.read()
    assert before.peak_since_start is False
    block = np.ones(200 * 2**20, dtype=np.uint8)  # ones: every page touched
    during = probe.read()
    del block
    after = probe.read()
    assert during.peak_mb - before.rss_mb >= 150
    assert during.rss_mb - before.rss_mb >= 150
    assert after.rss_mb <= during.rss_mb - 150  # freed: resident memory drops, the peak does not
    assert after.peak_mb - before.rss_mb >= 150
    probe.reset()
    assert probe.read().peak_mb <= during.peak_mb - 150


def test_reads_vmrss_and_vmhwm(tmp_path):
    (tmp_path / "status").write_text(STATUS)
    (tmp_path / "clear_refs").write_text("")
    probe = MemoryProbe(tmp_path)
    assert probe.read() == MemoryReading(rss_mb=100.0, peak_mb=300.0, peak_since_start=True)
    probe.reset()
    assert (tmp_path / "clear_refs").read_text() == "5"
    assert probe.read().peak_since_start is False


def test_a_peak_that_cannot_be_reset_is_reported_as_since_start(tmp_path):
    (tmp_path / "status").write_text(STATUS)  # no clear_refs: writing it fails, as on Linux < 4.0
    probe = MemoryProbe(tmp_path)
    probe.reset()
    reading = probe.read()
    assert reading.peak_since_start is True and reading.peak_mb == 300.0


def test_without_procfs_the_peak_comes_from_rusage(tmp_path):
    resource = pytest.importorskip("resource")
    reading = MemoryProbe(tmp_path / "missing").read()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    expected = maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024
    assert reading.rss_mb is None and reading.peak_since_start is True
    assert reading.peak_mb == pytest.approx(expected, rel=0.05)


def fake_torch(initialized: bool, allocated: int) -> types.ModuleType:
    torch = types.ModuleType("torch")
    resets = []
    torch.cuda = types.SimpleNamespace(
        is_initialized=lambda: initialized,
        max_memory_allocated=lambda: allocated,
        reset_peak_memory_stats=lambda: resets.append(1),
        resets=resets,
    )
    return torch


def test_device_peak_from_torch_when_cuda_is_in_use(tmp_path, monkeypatch):
    (tmp_path / "status").write_text(STATUS)
    torch = fake_torch(True, 3 * 2**29)
    monkeypatch.setitem(sys.modules, "torch", torch)
    probe = MemoryProbe(tmp_path)
    probe.reset()
    assert torch.cuda.resets == [1]
    assert probe.read().device_peak_mb == 1536.0


def test_no_device_peak_without_cuda(tmp_path, monkeypatch):
    (tmp_path / "status").write_text(STATUS)
    torch = fake_torch(False, 2**30)
    monkeypatch.setitem(sys.modules, "torch", torch)
    probe = MemoryProbe(tmp_path)
    probe.reset()
    assert torch.cuda.resets == [] and probe.read().device_peak_mb is None
    monkeypatch.delitem(sys.modules, "torch")
    assert probe.read().device_peak_mb is None


def test_the_probe_never_imports_torch():
    code = (
        "import sys; from sextant.memory import MemoryProbe; p = MemoryProbe(); p.reset(); p.read(); "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
