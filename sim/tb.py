"""Amaranth-simulator testbench helpers: seeded stream put/get with random gaps and stalls.

Use inside ``sim.add_testbench(async def tb(ctx): ...)`` (Amaranth 0.5 testbenches)::

    rng = random.Random(seed)
    await stream_put(ctx, dut.i, {"kind": EventKind.EVENT, "index": 3, "value": 2},
                     rng=rng, gap=0.3)
    payload = await stream_get(ctx, dut.o, rng=rng, stall=0.3)
"""

from __future__ import annotations

from amaranth.lib import data

__all__ = ["stream_put", "stream_get", "CycleLimitError"]


class CycleLimitError(RuntimeError):
    """A bounded wait for a handshake ran out of cycles."""


async def _wait(ctx, cond, timeout, sample=None):
    """Tick until ``cond`` is high at a clock edge (at most ``timeout`` ticks); return the
    value of ``sample`` at that edge."""
    sigs = (cond,) if sample is None else (cond, sample)
    if timeout is None:
        got = await ctx.tick().sample(*sigs[1:]).until(cond)
        return got[0] if sample is not None else None
    for _ in range(max(0, int(timeout))):
        _, _, *vals = await ctx.tick().sample(*sigs)
        if vals[0]:
            return vals[1] if sample is not None else None
    raise CycleLimitError(f"no handshake within {timeout} cycles")


async def stream_put(ctx, stream, payload, *, rng=None, gap=0.0, timeout=None):
    """Offer ``payload`` on ``stream`` until it is accepted.

    With ``rng`` (a ``random.Random``), first idle (``valid`` low) for a random number of cycles:
    each cycle with probability ``gap``. With ``timeout``, raise :class:`CycleLimitError` when
    the payload is not accepted within that many cycles.
    """
    if rng is not None and gap > 0:
        while rng.random() < gap:
            await ctx.tick()
    target = stream.payload
    if isinstance(payload, int) and isinstance(target, data.View):
        target = target.as_value()      # a packed int for a layout (e.g. a beat of pixels)
    ctx.set(target, payload)
    ctx.set(stream.valid, 1)
    await _wait(ctx, stream.ready, timeout)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, rng=None, stall=0.0, timeout=None):
    """Accept one payload from ``stream`` and return it.

    With ``rng``, first hold ``ready`` low for a random number of cycles (each cycle with
    probability ``stall``), so the producer sees backpressure. With ``timeout``, raise
    :class:`CycleLimitError` when nothing arrives within that many cycles.
    """
    if rng is not None and stall > 0:
        while rng.random() < stall:
            await ctx.tick()
    ctx.set(stream.ready, 1)
    payload = await _wait(ctx, stream.valid, timeout, sample=stream.payload)
    ctx.set(stream.ready, 0)
    return payload
