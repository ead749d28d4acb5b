"""A fixed torch thread count for computations whose bytes must reproduce.

oneDNN convolutions do not give the same bits with different intra-op thread counts (measured: a
shard generated serially with 2 threads and by a ``--workers 2`` backfill with 1 thread each had
different SHA-256). Generation shards therefore run with one thread count, whatever the process
was started with: a serial CLI run, a backfill worker or a Dagster step subprocess give the same
shard.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

# One thread: the count every local process can honour (a backfill worker on a 2-core laptop gets
# one core). Parallelism comes from running shards side by side (``--workers``), not from threads.
REPRODUCIBLE_THREADS = 1


@contextmanager
def fixed_threads(n: int = REPRODUCIBLE_THREADS) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
