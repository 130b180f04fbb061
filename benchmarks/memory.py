"""Process memory from ``/proc/self/status`` (Jittor allocates outside Python's heap, so
tracemalloc does not see it): VmHWM is the peak resident set of this process."""

from __future__ import annotations


def status_mb(field: str = "VmHWM") -> float:
    """``field`` of /proc/self/status in MB (NaN where /proc is not available)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ``/proc/self/clear_refs`` value 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False
