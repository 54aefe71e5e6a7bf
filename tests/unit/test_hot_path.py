"""The agents' hot path runs its database work on a few threads of its own."""

import asyncio
import threading
import time

from api.deps import HOT_PATH_THREADS, run_hot


def test_at_most_the_hot_paths_threads_run_at_once_and_every_call_is_answered() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def work(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return n * 2

    async def main() -> list[int]:
        return await asyncio.gather(*(run_hot(work, n) for n in range(20)))

    assert asyncio.run(main()) == [n * 2 for n in range(20)]
    assert most == HOT_PATH_THREADS


def test_a_new_event_loop_gets_a_limiter_of_its_own() -> None:
    """Test clients start event loops of their own; a limiter left to an ended loop must not
    hold their calls back."""

    async def main() -> str:
        return await run_hot(str.upper, "ok")

    assert asyncio.run(main()) == "OK"
    assert asyncio.run(main()) == "OK"
