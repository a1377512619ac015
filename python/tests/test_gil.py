"""Batched inference releases the GIL: Python code keeps running during a long call."""

import threading
import time

import jghm


def test_root_posterior_releases_the_gil():
    model = jghm.Model.random(10, 3, 4, seed=1)
    images, _ = model.sample(100_000, seed=1)
    model.root_posterior("image", images)  # warm-up
    start = time.perf_counter()
    model.root_posterior("image", images)
    one_call = time.perf_counter() - start
    done = threading.Event()

    def work():
        for _ in range(3):
            model.root_posterior("image", images)
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    last, longest = time.perf_counter(), 0.0
    while not done.is_set():  # this loop runs only while the worker does not hold the GIL
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    worker.join()
    # Holding the GIL through a call would stall this thread for the whole call.
    assert longest < one_call / 2, (longest, one_call)
