"""PipelineService pieces not covered through the HTTP routes."""

import gc
import weakref

from hayhooks.pipelines.service import settle_heap


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
