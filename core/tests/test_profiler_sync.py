"""The profiler with a runner that synchronizes its device (``sextant.runtime.Synchronizer``), on a
fake clock and a fake device: work a call enqueues finishes only when the device is synchronized,
so each value is exact and the order of the calls is recorded."""

from __future__ import annotations

from sextant.messages import ProfileOrder
from sextant.profiler import ProfilerConfig, measure, sweep
from sextant.runtime import Synchronizer
from sextant.screening import profile_candidate

MS = 1_000_000  # nanoseconds
US = 1_000
#: 10 ms windows, a 2 ms warm-up, one window is stable enough
CONFIG = ProfilerConfig(
    window_s=0.01,
    warmup_s=0.002,
    min_calls=3,
    warmup_calls=2,
    stable_windows=1,
    batch_budget_s=1.0,
    max_batch=4,
    sparse=False,
)


class FakeDevice:
    """A host clock that moves 1 µs per reading, and a device whose enqueued work (``device_ns``
    per call) is done, and its time passed, only in ``synchronize``. ``log`` holds every event."""

    def __init__(self, device_ns: int = 5 * MS) -> None:
        self.now, self.pending, self.device_ns = 0, 0, device_ns
        self.log: list[str] = []

    def clock(self) -> int:
        self.log.append("clock")
        self.now += US
        return self.now

    def infer(self) -> None:
        self.log.append("infer")
        self.pending += 1  # enqueued: returns at once

    def synchronize(self) -> None:
        self.log.append("sync")
        self.now += self.pending * self.device_ns
        self.pending = 0


def test_every_clock_reading_comes_after_a_synchronize_so_a_call_takes_its_device_time():
    device = FakeDevice()
    point = measure(device.infer, 1, CONFIG, clock=device.clock, synchronize=device.synchronize)
    log = device.log
    assert log.count("sync") == log.count("clock") and log[0] == "sync"
    assert all(log[i - 1] == "sync" for i, event in enumerate(log) if event == "clock")
    # one timed call: sync, clock (t0), infer, sync (the device finishes it), clock (t1)
    first = log.index("infer")
    assert log[first - 2 : first + 3] == ["sync", "clock", "infer", "sync", "clock"]
    # so each call measures the 5 ms its device work took (plus the 1 µs clock reading)
    assert point.p50_ms == point.p99_ms == point.mean_ms == 5.001
    # a 2 ms warm-up: one call reaches it, two are the least; a 10 ms window: two calls reach it,
    # three are the least; one window is stable
    assert (log.count("infer"), point.calls, point.windows) == (5, 3, 1)
    # the readings: the deadline, then a start and two per call in the warm-up and in the window
    assert log.count("clock") == 1 + (1 + 2 * 2) + (1 + 2 * 3) == 13


def test_without_synchronize_nothing_is_synchronized_and_the_clock_sees_only_the_host():
    device = FakeDevice()
    point = measure(device.infer, 1, CONFIG, clock=device.clock)
    assert "sync" not in device.log
    assert point.p50_ms == 0.001  # the enqueue only: what a GPU runner without it would report


def test_sweep_and_profile_candidate_pass_it_to_every_measurement():
    device = FakeDevice(device_ns=MS)
    points = []
    sweep(lambda batch: device.infer, CONFIG, points.append, clock=device.clock, synchronize=device.synchronize)
    assert [p.batch for p in points] == [1, 2, 4] and all(p.p50_ms == 1.001 for p in points)
    assert device.log.count("sync") == device.log.count("clock")

    device, full, screen = FakeDevice(device_ns=MS), [], []
    order = ProfileOrder(profile=True, cutoff=0.5, rivals={1: 1.0, 4: 1.0}, screen="throughput")
    outcome = profile_candidate(
        lambda batch: device.infer, CONFIG, order, full.append, screen.append,
        clock=device.clock, synchronize=device.synchronize,
    )  # fmt: skip
    assert [p.batch for p in screen] == [1, 4] and outcome.stop.value == "max_batch"
    assert all(p.p50_ms == 1.001 for p in screen + full)
    assert device.log.count("sync") == device.log.count("clock") > 0


def test_a_runner_with_synchronize_is_a_synchronizer():
    class Runner:
        def infer(self, inputs):
            return {}

        def close(self) -> None:
            pass

    class GpuRunner(Runner):
        def synchronize(self) -> None:
            pass

    assert isinstance(GpuRunner(), Synchronizer) and not isinstance(Runner(), Synchronizer)
