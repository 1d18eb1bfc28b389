"""Data sources for `fit`: in-memory arrays and Python iterators, stacked into [n, B, ...] chunks, prefetched on a
background thread and placed on the device mesh with the batch axis split over 'data'.

A source is a callable `source(step, n) -> batches` (the `batches_fn` of `fit`). `ArraySource` is a pure function of
the step (epoch permutations come from `fold_in(key, epoch)`), so a resumed run sees exactly the batches an
uninterrupted run would. `IteratorSource` cannot rewind a Python iterator; on resume it skips the batches already
consumed (`start_step` batches) so that no example is used twice.
"""

from __future__ import annotations

import atexit
import queue
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import jax
import numpy as np

from jaxflow._deprecation import key_first
from jaxflow.train.sharding import batch_sharding, check_divisible


def _leading_size(tree) -> int:
    sizes = {np.shape(x)[0] for x in jax.tree.leaves(tree)}
    if len(sizes) != 1:
        raise ValueError(f"every array of a data source must have the same number of examples, got sizes {sizes}")
    return sizes.pop()


def _place(tree, mesh):
    """Put a stacked chunk [n, B, ...] on the mesh, B split over 'data' (or on the default device without a mesh)."""
    if mesh is None:
        return jax.device_put(tree)
    sharding = batch_sharding(mesh, leading=1)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    # multi-host: every process holds the same global chunk; each contributes the rows its devices own
    return jax.tree.map(
        lambda x: jax.make_array_from_callback(x.shape, sharding, lambda idx, x=x: np.asarray(x[idx])), tree
    )


class ArraySource:
    """Minibatches of in-memory arrays (a pytree of [N, ...] arrays), reshuffled every epoch.

    The batch of global step s is rows perm_e[(s·B) mod N ...] with perm_e a permutation from fold_in(key, e):
    a function of the step alone (resumable, no state). The last partial batch of an epoch is dropped.

    Args:
        key: the JAX key of the epoch permutations.
        data: a pytree of arrays [N, ...] (e.g. {"x1": images, "labels": labels}).
        batch_size: B, at most N.
        mesh: a device mesh to shard each batch over (its 'data' axis), or None.
        shuffle: reshuffle every epoch (False: the rows in order).

    Called as `source(step, n) -> batches [n, B, ...]` (pass it to `fit(batches_fn=...)`).
    """

    @key_first(2, method=True)
    def __init__(self, key: jax.Array, data: Any, batch_size: int, *, mesh: Any = None, shuffle: bool = True):
        self.data = jax.tree.map(np.asarray, data)
        self.size = _leading_size(self.data)
        if not 0 < batch_size <= self.size:
            raise ValueError(f"batch_size must lie in [1, {self.size}] (the number of examples), got {batch_size}")
        if mesh is not None:
            check_divisible(batch_size, mesh)
        self.batch_size, self.key, self.mesh, self.shuffle = batch_size, key, mesh, shuffle
        self.batches_per_epoch = self.size // batch_size
        self._perm_cache: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm_cache:
            if self.shuffle:
                perm = np.asarray(jax.random.permutation(jax.random.fold_in(self.key, epoch), self.size))
            else:
                perm = np.arange(self.size)
            self._perm_cache = {epoch: perm}  # keep one epoch (memory stays O(N))
        return self._perm_cache[epoch]

    def indices(self, step: int, n: int) -> np.ndarray:
        """Row indices [n, B] of steps step … step + n − 1."""
        out = np.empty((n, self.batch_size), np.int64)
        for i in range(n):
            epoch, j = divmod(step + i, self.batches_per_epoch)
            out[i] = self._perm(epoch)[j * self.batch_size : (j + 1) * self.batch_size]
        return out

    def host_chunk(self, step: int, n: int):
        idx = self.indices(step, n)
        return jax.tree.map(lambda x: x[idx], self.data)

    def __call__(self, step: int, n: int):
        return _place(self.host_chunk(step, n), self.mesh)


class IteratorSource:
    """Minibatches from a Python iterable of batches (pytrees of [B, ...] arrays), stacked n at a time.

    `start_step`: batches to skip first (use the step a run resumes from). Raises StopIteration-free ValueError when
    the iterator ends before training does.

    Args:
        iterable: yields batches (pytrees of [B, ...] arrays).
        mesh: a device mesh to shard each batch over, or None.
        start_step: batches to skip first.
    """

    def __init__(self, iterable: Iterable, *, mesh: Any = None, start_step: int = 0):
        self.iterator = iter(iterable)
        self.mesh = mesh
        self.position = 0
        self._skip(start_step)

    def _next(self):
        try:
            batch = next(self.iterator)
        except StopIteration:
            raise ValueError(f"the data iterator ran out after {self.position} batches") from None
        self.position += 1
        return batch

    def _skip(self, k: int) -> None:
        for _ in range(k):
            self._next()

    def host_chunk(self, step: int, n: int):
        if step > self.position:  # resumed further on than this source: skip what was consumed
            self._skip(step - self.position)
        if step < self.position:
            raise ValueError(f"an iterator cannot rewind: asked for step {step}, already at {self.position}")
        batches = [jax.tree.map(np.asarray, self._next()) for _ in range(n)]
        size = _leading_size(batches[0])
        if self.mesh is not None:
            check_divisible(size, self.mesh)
        return jax.tree.map(lambda *xs: np.stack(xs), *batches)

    def __call__(self, step: int, n: int):
        return _place(self.host_chunk(step, n), self.mesh)


_LIVE_PREFETCHERS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_prefetchers() -> None:
    """Stop the background threads before the interpreter tears down: a daemon thread still inside an XLA call at
    exit aborts the process."""
    for prefetcher in list(_LIVE_PREFETCHERS):
        prefetcher.close()


class Prefetch:
    """Wrap a source so that the chunk after the one just served is prepared on a background thread.

    `fit` asks for consecutive chunks (step, n), (step + n, n), ... up to `total` steps (the last chunk shorter);
    `fit` sets `total` to its number of steps when it is None. A request that does not match the guess (a jump)
    restarts the prefetcher there.
    Host-side work (indexing, stacking, transfer) then overlaps the device's training on the previous chunk.

    Args:
        source: the wrapped `source(step, n)`.
        depth: how many chunks to prepare ahead.
        total: the run's number of steps (set by `fit` when None).
    """

    def __init__(self, source: Callable[[int, int], object], depth: int = 2, total: int | None = None):
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self.source, self.depth, self.total = source, depth, total
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._expected: tuple[int, int] | None = None

    def _next_request(self, step: int, n: int) -> tuple[int, int] | None:
        step += n
        if self.total is not None:
            if step >= self.total:
                return None
            n = min(n, self.total - step)
        return step, n

    def _worker(self, step: int, n: int) -> None:
        request: tuple[int, int] | None = (step, n)
        while request is not None and not self._stop.is_set():
            step, n = request
            try:
                item = ((step, n), self.source(step, n), None)
            except Exception as e:  # surfaced to the caller on the next request
                item = ((step, n), None, e)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return
            request = self._next_request(step, n)

    def _restart(self, step: int, n: int) -> None:
        self.close()
        self._stop = threading.Event()
        self._queue = queue.Queue(maxsize=self.depth)
        self._thread = threading.Thread(target=self._worker, args=(step, n), daemon=True)
        self._thread.start()
        _LIVE_PREFETCHERS.add(self)

    def __call__(self, step: int, n: int):
        if self._thread is None or self._expected != (step, n):
            self._restart(step, n)
        (got_step, got_n), value, error = self._queue.get()
        if error is not None:
            self.close()
            raise error
        assert (got_step, got_n) == (step, n)
        self._expected = self._next_request(step, n)
        return value

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
