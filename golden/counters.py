"""Counter names and width: the one definition every other module imports.

SPEC §5 fixes the counters the golden model computes exactly per layer and image; the hardware
keeps the same ones and adds two of its own. The word counters (docs/lanes.md) and the doublings
of bit-serial layers (docs/bitserial.md §5) extend both. The order is part of the hardware
interface: a counter's address on the network top is ``layer * COUNTER_STRIDE +
COUNTERS.index(name)`` (``hw.layout``, ``docs/hw-interfaces.md``), and the board protocol sends
them in this order.

Dependency-free on purpose (no numpy, no Amaranth), so that any module can import it.
"""

__all__ = ["SPEC_COUNTERS", "WORD_COUNTERS", "SHIFT_COUNTERS", "GOLDEN_COUNTERS",
           "HW_EXTRA_COUNTERS", "HW_COUNTERS", "COUNTER_WIDTH"]

#: The counters of SPEC §5, in order: events in and out, weight reads, potential reads and
#: writes, bias reads, synaptic updates and synaptic accumulations.
SPEC_COUNTERS = ("ev_in", "ev_out", "w_rd", "p_rd", "p_wr", "b_rd", "syn_updates", "syn_acc")

#: Word accesses of the weight and potential memories (docs/lanes.md): a core with L lanes
#: reads and writes words of L synapses or neurons, so ``w_rd = L·w_rd_words`` and
#: ``p_rd = L·p_rd_words``, ``p_wr = L·p_wr_words``; with L = 1 they equal the SPEC counters.
WORD_COUNTERS = ("w_rd_words", "p_rd_words", "p_wr_words")

#: The potential doublings P ← 2P of a bit-serial layer (docs/bitserial.md §5): one per neuron
#: and doubling sweep, (T − 1)·N_out per image; 0 in rate layers, joins and pools.
SHIFT_COUNTERS = ("shifts",)

#: Everything the golden model predicts exactly per layer and image.
GOLDEN_COUNTERS = SPEC_COUNTERS + WORD_COUNTERS + SHIFT_COUNTERS

#: What the hardware adds: busy cycles and saturating additions.
HW_EXTRA_COUNTERS = ("cycles", "saturations")

#: Every counter of a hardware layer core, in counter-address order. Later additions are
#: appended, so that no earlier address moves: the word counters at 10–12, ``shifts`` at 13
#: (``hw.layout.COUNTER_STRIDE`` = 16 leaves room for two more).
HW_COUNTERS = SPEC_COUNTERS + HW_EXTRA_COUNTERS + WORD_COUNTERS + SHIFT_COUNTERS

#: Bits of every hardware counter (and of the counter read port ``NetworkTop.ctr_data``).
COUNTER_WIDTH = 32
