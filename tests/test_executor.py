import asyncio
import threading

from hayhooks.pipelines.executor import Executor
from hayhooks.pipelines.models import LoadedPipeline, PipelineSource
from hayhooks.pipelines.wrapper import BasePipelineWrapper


class W(BasePipelineWrapper):
    def setup(self) -> None:
        pass

    def run_api(self, x: int) -> str:
        return f"{x}:{threading.current_thread().name}"

    async def run_api_async(self, x: int) -> str:
        return f"{x}:{threading.current_thread().name}"


def pipeline() -> LoadedPipeline:
    return LoadedPipeline(
        "w", "wrapper", W(), PipelineSource("w", "wrapper", "/", "f"), frozenset({"run"}), None, ""
    )


async def test_sync_on_pool_async_on_loop():
    ex = Executor(2)
    assert (await ex.call(pipeline(), "run_api", False, x=1)).startswith("1:hayhooks-run")
    assert (await ex.call(pipeline(), "run_api_async", True, x=2)) == f"2:{threading.current_thread().name}"
    ex.shutdown()


async def test_early_stop_closes_sync_generator_on_the_pool():
    ex = Executor(2)
    closed = threading.Event()

    def gen():
        try:
            yield from range(1000)
        finally:
            closed.set()

    agen = ex.aiter(gen())
    assert [await agen.__anext__() for _ in range(3)] == [0, 1, 2]
    await agen.aclose()
    assert await asyncio.to_thread(closed.wait, 10)
    ex.shutdown()


async def test_async_iterables_pass_through():
    async def agen():
        yield "a"
        yield "b"

    assert [x async for x in Executor(1).aiter(agen())] == ["a", "b"]


async def test_early_stop_closes_async_generators_at_once():
    closed = asyncio.Event()

    async def agen():
        try:
            for i in range(1000):
                yield i
        finally:
            closed.set()

    stream = Executor(1).aiter(agen())
    assert await stream.__anext__() == 0
    await stream.aclose()
    assert closed.is_set()


async def test_a_detached_sync_call_keeps_its_slot_until_it_returns():
    from hayhooks.pipelines.executor import DeadlineExceeded

    ex = Executor(4, max_queued=0)
    gate = threading.Event()
    slot = ex.admit()
    loop = asyncio.get_running_loop()
    try:
        await ex.call_sync(slot, gate.wait, (10,), loop.time() + 0.1)
    except DeadlineExceeded:
        pass
    else:  # pragma: no cover
        raise AssertionError("no deadline")
    slot.release()  # the run is over for its caller...
    assert ex.detached == 1 and ex.in_flight == 1  # ...but its thread still works
    gate.set()
    for _ in range(100):
        if ex.detached == 0 and ex.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert ex.detached == 0 and ex.in_flight == 0
    ex.shutdown()


async def test_admission_bound_counts_threads_plus_queue():
    from hayhooks.errors import Overloaded

    ex = Executor(2, max_queued=1)
    slots = [ex.admit() for _ in range(3)]
    try:
        ex.admit()
    except Overloaded:
        pass
    else:  # pragma: no cover
        raise AssertionError("admitted past the bound")
    slots[0].release()
    slots[0].release()  # idempotent
    ex.admit().release()
    assert ex.in_flight == 2
    ex.shutdown()
