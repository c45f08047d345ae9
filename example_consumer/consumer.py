"""The 0.1.x example consumers, under their 0.1.x names.

kamikaze service example_consumer.consumer.blocking_consumer_func
kamikaze service example_consumer.consumer.yielding_consumer_func
"""

import asyncio


async def yielding_consumer_func(package, sleep_time=5):
    """A coroutine consumer: cancelled as soon as the top changes."""
    if package is None:
        print("Queue is empty", flush=True)
        return
    print(f"Consuming {package.payload!r} (priority {package.priority})", flush=True)
    for second in range(int(sleep_time)):
        print(f"  {package.payload!r}: {second + 1}/{int(sleep_time)} s", flush=True)
        await asyncio.sleep(1)
    print(f"Consumed {package.payload!r}", flush=True)


def blocking_consumer_func(package):
    """A plain consumer: runs inline, the service waits for it."""
    if package is None:
        print("Queue is empty", flush=True)
    else:
        print(f"Consuming {package.payload!r} (priority {package.priority})", flush=True)
