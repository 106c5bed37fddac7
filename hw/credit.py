"""Credit-counted output queue: a store of registers and an output register.

A producer that cannot be stalled (a pipeline without backpressure) reserves a credit when it
starts a token, so the token always finds room when it arrives a few cycles later::

    take ──► used += 1            (a token may arrive)
    w_en ──► store[tail]          (it arrives; the credit stays taken)
    drop ──► used -= 1            (it will not arrive: e.g. a zero pixel, a neuron that did not fire)
    o handshake ──► used -= 1     (it left)

``room`` is ``used != credits``, a register of its own: the producer's issue logic never sees the
consumer's ``o.ready``. ``o.valid`` and ``o.payload`` are registers (the output register O,
loaded from the store's head), so no combinational path crosses the queue in either direction.

Capacity: tokens in flight + in the store + in O never exceed ``credits``, and O takes the
store's head whenever it is free, so the store never holds more than ``credits - 1`` tokens
(one, for a cycle, when ``credits == 1``); its pointers wrap at ``depth`` (a power of two) and
``head == tail`` means empty, which needs ``credits <= depth``.

Store: registers (an ``Array``), or with ``store="lutram"`` a memory with an asynchronous read
port, which yosys maps to distributed RAM on ECP5 (``TRELLIS_DPR16X4``: 16 words × 4 bits in six
LUT4 sites, against a flip-flop and about a LUT4 per stored bit as registers). Both behave
identically, cycle for cycle. ``store="auto"`` (the default) takes the memory when the
elaborating platform's ``family`` is ``"ecp5"`` (an amaranth-boards ECP5 platform, or the
stand-in :func:`flows.synth.prepare` passes) and registers otherwise: iCE40 has no distributed
RAM, and yosys would put the memory into a block RAM there (the register that follows absorbed
into its read port, whose clock-to-out would then start the next path).

Timing: a token written in cycle c is in O (``o.valid``) in cycle c + 2 at the earliest; a
credit taken in cycle c with its token leaving (or dropped) in cycle c + k is free again in
cycle c + k + 2 (returns are registered before they reach the count). A producer issuing one
token per cycle with k cycles from issue to ``o``'s handshake needs ``credits >= k + 2`` to
never wait.
"""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .neuron import check_int

__all__ = ["CreditQueue", "STORES", "lutram_platform"]

STORES = ("auto", "registers", "lutram")


def lutram_platform(platform):
    """Whether ``store="auto"`` takes distributed RAM on ``platform`` (see the module
    docstring)."""
    return getattr(platform, "family", None) == "ecp5"


class CreditQueue(wiring.Component):
    """Register queue with credit accounting (see the module docstring).

    Parameters
    ----------
    shape : shape-like
        Payload shape.
    depth : int
        Store size, a power of two >= 2 (default 8).
    credits : int
        Tokens that may be reserved at once, 1 <= credits <= depth (default depth - 1).
    store : {"auto", "registers", "lutram"}
        How the store is built (the module docstring); the behaviour is the same.

    Members
    -------
    take : In(1)
        Reserve one credit this cycle (only while ``room`` is high).
    drop : In(1)
        Return one credit whose token will never be written.
    w_en, w_data : In
        Write a token whose credit was taken earlier.
    room : Out(1)
        A credit is free (``take`` may be high).
    o : Out(stream.Signature(shape))
        The tokens, in write order.
    """

    def __init__(self, *, shape, depth=8, credits=None, store="auto"):
        if store not in STORES:
            raise ValueError(f"store must be one of {', '.join(STORES)}, not {store!r}")
        self._store = store
        self._depth = check_int("depth", depth, minimum=2)
        if depth & (depth - 1):
            raise ValueError(f"depth must be a power of two, not {depth}")
        self._credits = check_int("credits", depth - 1 if credits is None else credits,
                                  minimum=1)
        if self._credits > depth:
            raise ValueError(f"credits ({self._credits}) must not exceed depth ({depth})")
        self._shape = shape
        super().__init__({
            "take": In(1),
            "drop": In(1),
            "w_en": In(1),
            "w_data": In(shape),
            "room": Out(1),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        used = Signal(range(self._credits + 1))
        room = Signal(init=1)       # used != credits, as a register of its own
        m.d.comb += self.room.eq(room)

        head = Signal(range(self._depth))
        tail = Signal(range(self._depth))
        lutram = (self._store == "lutram"
                  or (self._store == "auto" and lutram_platform(platform)))
        if lutram:
            m.submodules.store = mem = Memory(shape=self._shape, depth=self._depth, init=[])
            wr = mem.write_port()
            rd = mem.read_port(domain="comb")
            m.d.comb += [wr.addr.eq(tail), wr.data.eq(self.w_data), wr.en.eq(self.w_en),
                         rd.addr.eq(head)]
            head_word = rd.data
        else:
            store = Array(Signal(self._shape, name=f"store{k}") for k in range(self._depth))
            head_word = store[head]
        o_valid = Signal()
        o_data = Signal(self._shape)
        pop = Signal()      # O loads the store's head
        nonempty = Signal()     # head != tail, as a register of its own
        head_inc = Signal.like(head)
        m.d.comb += head_inc.eq(head + 1)
        # The store is never full (the credits), so a write leaves it non-empty, and without a
        # write a pop leaves it non-empty unless it took the last entry: ``w_en`` and ``pop``
        # (late: the producer's emission and the consumer's ready) only select.
        m.d.sync += nonempty.eq(self.w_en | Mux(pop, head_inc != tail, nonempty))
        m.d.comb += [
            pop.eq(nonempty & (~o_valid | self.o.ready)),
            self.o.valid.eq(o_valid),
            self.o.payload.eq(o_data),
        ]
        with m.If(self.w_en):
            m.d.sync += tail.eq(tail + 1)
            if not lutram:
                m.d.sync += store[tail].eq(self.w_data)
        with m.If(pop):
            m.d.sync += [o_data.eq(head_word), head.eq(head + 1)]
        # O is full after a pop, and after a cycle in which it was full and not read: the same
        # as "set on a pop, cleared on a read", written without the pop, whose ``o.ready``
        # term would otherwise sit before the register's enable.
        m.d.sync += o_valid.eq(nonempty | (o_valid & ~self.o.ready))
        # Returned credits (drops, handshakes) are registered and subtracted one cycle later,
        # so that the producer's late signals do not reach the counter's adder: ``used`` may
        # overstate the credits in use for a cycle, never understate them.
        ret = Signal(range(3))
        m.d.sync += ret.eq(self.drop + (self.o.valid & self.o.ready))
        # Both outcomes of ``take`` are computed from registers alone, so that ``take`` (the
        # producer's issue logic, late in the cycle) only selects: no adder after it.
        keep, grow = Signal.like(used), Signal.like(used)
        m.d.comb += [keep.eq(used - ret), grow.eq(used + 1 - ret)]
        with m.If(self.take):
            m.d.sync += [used.eq(grow), room.eq(grow != self._credits)]
        with m.Else():
            m.d.sync += [used.eq(keep), room.eq(keep != self._credits)]
        return m
