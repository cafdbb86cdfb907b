#!/usr/bin/env python3
"""How long a thread that only sleeps 1 ms at a time is kept from running: the gaps between its
wake-ups, for DURATION seconds (default 10). Run it idle and beside a load to see whether the
machine (guest scheduler or hypervisor) stalls a runnable thread.
  python3 scripts/bench/investigations/scheduling/hiccup.py [DURATION]"""
import sys
import time

dur = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
end = time.perf_counter() + dur
last = time.perf_counter()
gaps = []
while time.perf_counter() < end:
    time.sleep(0.001)
    now = time.perf_counter()
    gaps.append(now - last)
    last = now
gaps.sort()
n = len(gaps)
print(f"samples {n}  p99 {gaps[int(n * 0.99)] * 1000:.1f} ms  p99.9 {gaps[int(n * 0.999)] * 1000:.1f} ms"
      f"  max {gaps[-1] * 1000:.1f} ms  >= 50 ms: {sum(g >= 0.05 for g in gaps)}")
