"""Counter names and width: the one definition every other module imports.

SPEC §5 fixes the counters the golden model computes exactly per layer and image; the hardware
keeps the same ones and adds two of its own. The order is part of the hardware interface: a
counter's address on the network top is ``layer * COUNTER_STRIDE + COUNTERS.index(name)``
(``hw.layout``, ``docs/hw-interfaces.md``), and the board protocol sends them in this order.

Dependency-free on purpose (no numpy, no Amaranth), so that any module can import it.
"""

__all__ = ["SPEC_COUNTERS", "WORD_COUNTERS", "GOLDEN_COUNTERS", "HW_EXTRA_COUNTERS",
           "HW_COUNTERS", "COUNTER_WIDTH"]

#: The counters of SPEC §5, in order: events in and out, weight reads, potential reads and
#: writes, bias reads, synaptic updates and synaptic accumulations.
SPEC_COUNTERS = ("ev_in", "ev_out", "w_rd", "p_rd", "p_wr", "b_rd", "syn_updates", "syn_acc")

#: Word accesses of the weight and potential memories (docs/lanes.md): a core with L lanes
#: reads and writes words of L synapses or neurons, so ``w_rd = L·w_rd_words`` and
#: ``p_rd = L·p_rd_words``, ``p_wr = L·p_wr_words``; with L = 1 they equal the SPEC counters.
WORD_COUNTERS = ("w_rd_words", "p_rd_words", "p_wr_words")

#: Everything the golden model predicts exactly per layer and image.
GOLDEN_COUNTERS = SPEC_COUNTERS + WORD_COUNTERS

#: What the hardware adds: busy cycles and saturating additions.
HW_EXTRA_COUNTERS = ("cycles", "saturations")

#: Every counter of a hardware layer core, in counter-address order (the word counters come
#: last, so that the addresses of the first ten did not move when they were added).
HW_COUNTERS = SPEC_COUNTERS + HW_EXTRA_COUNTERS + WORD_COUNTERS

#: Bits of every hardware counter (and of the counter read port ``NetworkTop.ctr_data``).
COUNTER_WIDTH = 32
