"""The machine around a benchmark: CPU use of other processes, page faults (no NumPy here)."""

from __future__ import annotations

import os
import time

clock = time.perf_counter


class CpuMonitor:
    """CPU time used by *other* processes (Linux /proc), as a fraction of all cores.

    The benchmark shares the machine: another busy process slows a 2-thread BLAS call
    far more than its own share. Every timed window records this fraction, and
    ``wait_until_quiet`` can hold the next window until the machine is idle.
    """

    def __init__(self) -> None:
        self.available = os.path.exists("/proc/stat") and os.path.exists("/proc/self/stat")
        self.ticks = os.sysconf("SC_CLK_TCK") if self.available else 100
        self.cores = os.cpu_count() or 1

    def sample(self):
        """(wall time, busy ticks of the machine, ticks of this process), or None."""
        if not self.available:
            return None
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        busy = sum(values) - values[3] - values[4]  # all but idle and iowait
        return clock(), busy, int(fields[11]) + int(fields[12])  # utime + stime

    def others(self, start, end) -> float | None:
        """Share of all cores used by other processes between two samples."""
        if start is None or end is None or end[0] <= start[0]:
            return None
        other_ticks = (end[1] - start[1]) - (end[2] - start[2])
        return max(0.0, other_ticks / (self.ticks * self.cores * (end[0] - start[0])))

    def wait_until_quiet(self, threshold: float = 0.05, settle: float = 0.25, timeout: float = 10.0) -> bool:
        """Wait (at most ``timeout`` s) for a ``settle``-second stretch in which other
        processes use less than ``threshold`` of the CPU. True when that happened."""
        if not self.available:
            return True
        deadline = clock() + timeout
        while clock() < deadline:
            start = self.sample()
            time.sleep(settle)
            busy = self.others(start, self.sample())
            if busy is not None and busy < threshold:
                return True
        return False


MONITOR = CpuMonitor()


def minor_page_faults() -> int:
    """Minor page faults of this process so far (memory the OS had to map in)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except ImportError:  # not POSIX
        return 0
