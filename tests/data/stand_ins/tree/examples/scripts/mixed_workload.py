"""Stand-in for torc's examples/scripts/mixed_workload.py: 50 MiB held while one core is busy
for 3 seconds."""

import time

block = bytearray(50 * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1
deadline = time.monotonic() + 3.0
n = 0
while time.monotonic() < deadline:
    n += sum(i * i for i in range(1000))
print(f"mixed_workload: held {len(block) // 2**20} MiB, done ({n})")
