"""SIGTERM and SIGHUP inside ``stop_signals`` are handled as Ctrl-C is, and only inside it."""

from __future__ import annotations

import os
import signal

import pytest

from sextant.stops import STOP_SIGNALS, Stopped, signal_of, stop_signals


@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: s.name)
def test_a_stop_signal_raises_a_keyboard_interrupt_that_names_it(sig: signal.Signals) -> None:
    with pytest.raises(KeyboardInterrupt) as caught, stop_signals():
        os.kill(os.getpid(), sig)
        signal.sigtimedwait([], 0)  # give the interpreter a point at which to run the handler
    assert isinstance(caught.value, Stopped)
    assert signal_of(caught.value) == sig
    assert caught.value.exit_code == 128 + sig


def test_the_previous_handlers_come_back_after_the_block() -> None:
    seen: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with stop_signals():
            assert signal.getsignal(signal.SIGTERM) is not before
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)


def test_ctrl_c_is_sigint() -> None:
    assert signal_of(KeyboardInterrupt()) == signal.SIGINT
    assert Stopped().exit_code == 130
