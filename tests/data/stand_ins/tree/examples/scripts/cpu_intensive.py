"""Stand-in for torc's examples/scripts/cpu_intensive.py: keeps one core busy for 3 seconds, so the
monitor (sampling every 2 s in the example) sees it running (torc's script runs for about a minute)."""

import time

deadline = time.monotonic() + 3.0
n = 0
while time.monotonic() < deadline:
    n += sum(i * i for i in range(1000))
print(f"cpu_intensive: done ({n})")
