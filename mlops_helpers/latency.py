"""Latency of sequential requests: time each call, report p50, p99 and throughput."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class LatencyReport:
    """Latencies of ``n`` sequential requests, in milliseconds."""

    latencies_ms: tuple[float, ...]
    seconds: float

    @property
    def n(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, q: float) -> float:
        import numpy as np

        return float(np.percentile(self.latencies_ms, q))

    @property
    def p50_ms(self) -> float:
        return self.percentile(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile(99)

    @property
    def requests_per_second(self) -> float:
        return self.n / self.seconds if self.seconds else float("inf")

    def __str__(self) -> str:
        return (
            f"{self.n} requests: p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"{self.requests_per_second:.0f} requests/s"
        )


def measure_latency(call, n_requests: int = 300, *, warmup: int = 5, progress: bool = True) -> LatencyReport:
    """Time ``n_requests`` sequential calls of ``call()`` (after ``warmup`` untimed ones), with a progress bar."""
    from tqdm.auto import tqdm

    if n_requests < 1:
        raise ValueError(f"n_requests must be at least 1, not {n_requests}")
    for _ in range(warmup):
        call()
    latencies = []
    started = time.perf_counter()
    for _ in tqdm(range(n_requests), desc="requests", unit="req", disable=not progress, file=sys.stderr):
        t0 = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - t0) * 1000.0)
    return LatencyReport(tuple(latencies), time.perf_counter() - started)
