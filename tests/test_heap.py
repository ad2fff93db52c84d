"""The heap settler: gc.freeze after changes of the pipeline set, debounced, off the deploy path."""

import gc
import time
import weakref

from conftest import wait_until

from hayhooks.pipelines.heap import HeapSettler, settle_heap


class Cycle:
    pass


def test_settle_heap_freezes_long_lived_objects_and_frees_retired_ones():
    settle_heap()
    assert gc.get_freeze_count() > 0
    a, b = Cycle(), Cycle()
    a.other, b.other = b, a  # only the cyclic collector can free these
    settle_heap()  # they are now frozen along with everything else alive
    ref = weakref.ref(a)
    del a, b
    gc.collect()
    assert ref() is not None, "frozen objects are out of the collector's reach"
    settle_heap()  # a change of the pipeline set: unfreeze, collect, freeze again
    assert ref() is None, "what was retired since the last freeze is freed"
    gc.unfreeze()


def test_a_burst_of_changes_costs_one_collection_after_a_quiet_moment():
    settler = HeapSettler(delay=0.3, max_delay=30)
    try:
        started = time.monotonic()
        for _ in range(5):  # e.g. startup loading five pipelines
            settler.poke()
            time.sleep(0.05)
        assert settler.settled == 0, "nothing runs while changes keep coming"
        wait_until(lambda: settler.settled == 1, timeout=10)
        assert time.monotonic() - started >= 0.3
        assert gc.get_freeze_count() > 0
        time.sleep(0.5)
        assert settler.settled == 1
        settler.poke()
        wait_until(lambda: settler.settled == 2, timeout=10)
    finally:
        settler.stop()
        gc.unfreeze()
    settler.poke()  # after stop: ignored, no thread left behind
    assert settler.settled == 2


def test_changes_that_never_stop_still_get_a_collection_after_max_delay():
    settler = HeapSettler(delay=0.5, max_delay=1.0)
    try:
        started = time.monotonic()
        while settler.settled == 0 and time.monotonic() - started < 10:
            settler.poke()  # a change every 0.1 s: never quiet for 0.5 s
            time.sleep(0.1)
        assert settler.settled == 1
        assert 0.9 <= time.monotonic() - started < 5
    finally:
        settler.stop()
        gc.unfreeze()


async def test_the_server_sets_the_young_generation_threshold(app_client, pipelines_dir):
    import gc

    from hayhooks.pipelines.heap import tune_collector

    saved = gc.get_threshold()
    try:
        await app_client(pipelines_dir, gc_threshold=12_345)
        assert gc.get_threshold() == (12_345, saved[1], saved[2])
        tune_collector(0)  # 0 keeps what the interpreter has
        assert gc.get_threshold()[0] == 12_345
    finally:
        gc.set_threshold(*saved)
