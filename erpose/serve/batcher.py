"""Micro-batching: requests that arrive together share one model call, run off the event loop.

The first waiting request opens a batch and takes every request already queued (up to
``max_batch``): while the model is busy, requests pile up and the next call takes them together.
A batch waits (at most ``wait_s``) only for requests announced as on their way (``arriving``: their
upload is being read or decoded), never on the chance that one may come: a lone client pays no
wait. Requests with different batch keys (input sizes) are run as separate calls. The queue is
bounded: ``submit`` raises ``QueueFullError`` instead of letting work pile up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


class QueueFullError(RuntimeError):
    """The server's request queue is full (the client should retry later: HTTP 503)."""


@dataclass
class _Job:
    key: Hashable
    payload: Any
    future: asyncio.Future = field(repr=False)


def model_thread() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread a served model runs in: load it there too (see :class:`MicroBatcher`)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="erpose-model")


class MicroBatcher:
    """Collect jobs into batches and run ``run_batch(key, payloads) -> results`` in one worker thread.

    Args:
        run_batch: called with a batch key and the payloads of one batch; returns one result per
            payload (an exception fails every job of that batch).
        max_batch: payloads per call at most.
        wait_s: how long a batch waits, at most, for jobs announced by :meth:`arriving`.
        queue_size: jobs waiting at most.
        executor: the single-thread executor to run batches in (default: a new :func:`model_thread`).
            Pass the one the model was loaded in: PyTorch's OpenMP keeps one thread team per
            thread that runs parallel work, and once a process holds more OpenMP threads than
            CPUs, libgomp overrides ``OMP_WAIT_POLICY`` and ``GOMP_SPINCOUNT`` with a short
            spin (measured on 2 cores: ~1,200 sleeps and wake-ups per ER-Pose-n forward pass).
            One thread for load, warm-up and batches keeps one team, so the wait policy in the
            environment (``erpose serve`` sets ``PASSIVE`` unless told otherwise) is the one used.
    """

    def __init__(self, run_batch: Callable[[Hashable, Sequence[Any]], Sequence[Any]], max_batch: int = 8,
                 wait_s: float = 0.01, queue_size: int = 64,
                 executor: concurrent.futures.ThreadPoolExecutor | None = None) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.queue_size = queue_size
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task | None = None
        # One thread: the model is not re-entrant, and it parallelises internally.
        self._executor = executor if executor is not None else model_thread()
        self.on_batch: Callable[[int], None] | None = None
        self._arriving = 0

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    @property
    def arriving_count(self) -> int:
        """Requests announced by :meth:`arriving` that have not submitted or given up yet."""
        return self._arriving

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Announce a request that will :meth:`submit` soon (its upload is being read or decoded).

        A batch being collected waits for announced requests, for ``wait_s`` at most; with none
        announced it runs at once. Leave the block when the job is submitted or the request fails.
        """
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def warm_up(self, key: Hashable, payload: Any) -> None:
        """Run ``payload`` as every batch size 1..``max_batch`` once, in the model thread.

        The allocators (PyTorch's and the C library's, ONNX Runtime's arena, oneDNN's kernel cache)
        then hold what these shapes need before the first request, not while serving.
        """
        loop = asyncio.get_running_loop()
        for size in range(1, self.max_batch + 1):
            await loop.run_in_executor(self._executor, self.run_batch, key, [payload] * size)

    async def submit(self, key: Hashable, payload: Any) -> Any:
        """Queue one payload and wait for its result; ``QueueFullError`` when the queue is full."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not awaited")
        job = _Job(key, payload, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFullError(f"{self.queue_size} requests are already waiting") from None
        return await job.future

    async def _collect(self) -> list[_Job]:
        assert self._queue is not None
        queue = self._queue
        jobs = [await queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while len(jobs) < self.max_batch:
            while len(jobs) < self.max_batch and not queue.empty():  # everything already waiting
                jobs.append(queue.get_nowait())
            remaining = deadline - loop.time()
            if len(jobs) >= self.max_batch or self._arriving == 0 or remaining <= 0:
                break
            try:
                jobs.append(await asyncio.wait_for(queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            groups: dict[Hashable, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for key, group in groups.items():
                live = [job for job in group if not job.future.cancelled()]  # clients that went away
                if not live:
                    continue
                try:
                    results = await loop.run_in_executor(self._executor, self.run_batch, key, [j.payload for j in live])
                    if self.on_batch is not None:
                        self.on_batch(len(live))
                except Exception as exc:  # one failed call fails its own jobs, not the server
                    for job in live:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    continue
                for job, result in zip(live, results):
                    if not job.future.done():
                        job.future.set_result(result)
