"""Helpers of the raw assets (assets/raw.py)."""

import gc

import pytest

from qtickets_assets.assets.raw import collector_paused


def test_the_collector_is_paused_and_back_on_also_after_a_failure():
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="a seat call failed"), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("a seat call failed")
    assert gc.isenabled()  # a failed step must not leave a long-lived process without its collector


def test_the_collector_stays_off_when_it_was_off():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
