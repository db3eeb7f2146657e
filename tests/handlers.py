"""Handler sources more than one test runs."""

# A background thread that ticks every 5 ms. The handler reports the ticks so far and the
# longest gap between two of them: a freeze shows as one gap as long as the freeze.
# Event: "run" (seconds to work), "hang" (sleep past any timeout), "allocate_mb".
TICKER = """
import threading, time
ticks = []

def tick():
    while True:
        ticks.append(time.time())
        time.sleep(0.005)

threading.Thread(target=tick, daemon=True).start()

def lambda_handler(event, context):
    if event.get("hang"):
        time.sleep(600)
    time.sleep(event.get("run", 0))
    block = bytearray(event.get("allocate_mb", 0) * 1024 * 1024)
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    return {"count": len(ticks), "max_gap": max(gaps) if gaps else 0, "last": ticks[-1], "allocated": len(block)}
"""
