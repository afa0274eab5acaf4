"""Stand-in for torc's examples/scripts/memory_intensive.py: holds 100 MiB for 3 seconds, so
the monitor (sampling every 2 s in the example) sees it (torc's script allocates gigabytes for
about a minute)."""

import time

block = bytearray(100 * 2**20)
for i in range(0, len(block), 4096):  # touch every page so it counts as resident
    block[i] = 1
time.sleep(3.0)
print(f"memory_intensive: held {len(block) // 2**20} MiB")
