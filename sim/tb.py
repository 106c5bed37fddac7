"""Amaranth-simulator testbench helpers: seeded stream put/get with random gaps and stalls.

Use inside ``sim.add_testbench(async def tb(ctx): ...)`` (Amaranth 0.5 testbenches)::

    rng = random.Random(seed)
    await stream_put(ctx, dut.i, {"kind": EventKind.EVENT, "index": 3, "value": 2},
                     rng=rng, gap=0.3)
    payload = await stream_get(ctx, dut.o, rng=rng, stall=0.3)
"""

from __future__ import annotations

__all__ = ["stream_put", "stream_get"]


async def stream_put(ctx, stream, payload, *, rng=None, gap=0.0):
    """Offer ``payload`` on ``stream`` until it is accepted.

    With ``rng`` (a ``random.Random``), first idle (``valid`` low) for a random number of cycles:
    each cycle with probability ``gap``.
    """
    if rng is not None and gap > 0:
        while rng.random() < gap:
            await ctx.tick()
    ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, rng=None, stall=0.0):
    """Accept one payload from ``stream`` and return it.

    With ``rng``, first hold ``ready`` low for a random number of cycles (each cycle with
    probability ``stall``), so the producer sees backpressure.
    """
    if rng is not None and stall > 0:
        while rng.random() < stall:
            await ctx.tick()
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload
