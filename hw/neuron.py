"""The multi-level fire unit (SPEC §2–§3): one neuron's end-of-timestep update.

For each neuron of the sweep it takes the accumulated potential ``P`` and the bias ``b`` and
computes::

    H  = P + b
    z  = 0 if H < θ else min(N, floor(H / θ))
    P' = H - z·θ (soft reset), or v0 at the last timestep of the inference

With ``reset="hard"`` (docs/reset.md) ``P' = v0`` when ``z >= 1`` and ``H`` otherwise (v0 at the
last timestep as before); z and the timing are the same.

With ``leak=k >= 1`` (docs/leak.md) the potential R after the reset is written as
``R − (R >> k)`` (an arithmetic shift, wires only, and one subtractor), v0 at the last timestep
as before; z and the timing are the same.

In readout mode it never fires: ``z = 0`` and ``P' = H`` (``v0`` at the last timestep); ``H``
travels along in the output so that the readout core can emit it.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.counters import COUNTER_WIDTH
from golden.ir import MAX_LEAK, leak_int

from .layout import value_width

__all__ = ["FireUnit", "fire_timing", "FireInLayout", "FireOutLayout", "check_int", "saturate",
           "BitSerialUnit", "BitSerialInLayout", "bitserial_sweeps"]


def check_int(name, value, *, minimum=None, what=None):
    """Validate an integer constructor argument; messages follow SPEC §4's pattern."""
    what = what or ("a positive integer" if minimum == 1 else
                    f"an integer >= {minimum}" if minimum is not None else "an integer")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {what}, not {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {what}, not {value!r}")
    return value


def saturate(m, value, out, flag, *, enabled):
    """``out = value`` clamped to ``out``'s signed range, ``flag`` high when clamped (combinational,
    in module ``m``); without ``enabled`` (the width is safe) a plain assignment."""
    w = len(out)
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    if not enabled:
        m.d.comb += out.eq(value)
        return
    with m.If(value > hi):
        m.d.comb += [out.eq(hi), flag.eq(1)]
    with m.Elif(value < lo):
        m.d.comb += [out.eq(lo), flag.eq(1)]
    with m.Else():
        m.d.comb += out.eq(value)


def _or_all(values):
    """Bitwise OR of a list of values, as a balanced tree."""
    while len(values) > 1:
        values = [values[k] | values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]


def check_choice(name, value, choices):
    if value not in choices:
        opts = " or ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be {opts}, not {value!r}")
    return value


class FireInLayout(data.StructLayout):
    def __init__(self, index_width, potential_width, bias_width):
        super().__init__({
            "index": unsigned(index_width),
            "p": signed(potential_width),
            "b": signed(bias_width),
            "last": unsigned(1),
        })


class FireOutLayout(data.StructLayout):
    def __init__(self, index_width, potential_width, levels):
        super().__init__({
            "index": unsigned(index_width),
            "z": unsigned(value_width(levels)),
            "p": signed(potential_width),
            "h": signed(potential_width),
        })


def fire_timing(*, discharge, levels, readout=False, pipelined=False):
    """``(latency, interval)`` of a :class:`FireUnit` with these parameters, without building
    one (see :attr:`FireUnit.latency`, :attr:`FireUnit.interval`; tests/test_timing.py measures
    both in the simulator)."""
    if pipelined and discharge == "parallel" and not readout:
        return 3, 1         # skid-bypass -> stage 1 -> stage 2 -> output register
    if discharge == "parallel" or readout:
        return 1, 1
    return levels + 1, levels + 2


class FireUnit(wiring.Component):
    """Multi-level fire unit.

    Timing: ``discharge="parallel"``: N comparators, latency 1 cycle, one neuron per cycle
    (``pipelined=True``: latency 3 cycles, still one neuron per cycle);
    ``discharge="serial"``: N compare-subtract micro-steps (seed 000), latency N+1 cycles, one
    neuron every N+2 cycles. Both are registered stream stages: ``o.valid`` comes from a register,
    and a stalled output holds the unit (``i.ready`` low) without losing or repeating a neuron.

    Parameters
    ----------
    levels : int
        N >= 1, the most spikes per timestep.
    threshold : int
        θ >= 1.
    v0 : int
        Potential after the last timestep (must fit ``potential_width``).
    potential_width : int
        Width of P and H (>= 2).
    bias_width : int
        Width of b (>= 2).
    index_width : int
        Width of the neuron index carried along.
    discharge : {"parallel", "serial"}
    readout : bool
        Never fire (readout layer).
    reset : {"soft", "hard"}
        ``"soft"``: ``P' = H − z·θ`` (SPEC §2). ``"hard"``: ``P' = v0`` when the neuron fires
        (``z >= 1``, that is ``H >= θ``), else ``H`` (docs/reset.md). Same z, latency and
        interval; the serial unit still takes its N micro-steps and selects v0 at the end.
        Ignored by a readout unit (it never fires).
    leak : int
        k in 0..30 (docs/leak.md). k >= 1: ``P' = R − (R >> k)`` where R is the potential after
        the reset (soft ``H − z·θ``, hard v0 or H), except at the last timestep (``v0``). The
        subtractor follows the reset in the same cycle (the parallel unit; the serial unit's
        last micro-step; the pipelined unit's output stage, after the selection of ``d_z``),
        so latency and interval are those without leak. A hard reset's leaked v0 is a
        constant. Must be 0 for a readout unit.
    saturate : bool
        The potential width was forced narrower than the safe one: saturate ``H`` to the width,
        raise the sticky ``overflow`` flag and count saturations. Otherwise ``H`` cannot overflow
        (the static bound of SPEC §3) and no saturation logic is built.
    pipelined : bool
        ``discharge="parallel"`` only (ignored for serial and readout units): register
        ``H = P + b`` before the comparators (one more cycle of latency, same throughput), and
        compute ``P'`` by selecting one of the N differences ``H - kθ`` (whose signs are the
        comparisons) instead of subtracting ``z·θ`` after them; a one-neuron skid register makes
        ``i.ready`` a register, so ``o.ready`` does not reach ``i.ready`` combinationally. For a
        clock where the adder and the comparators do not fit in one cycle.
    stalls : bool
        Pipelined unit only: ``False`` promises that the output is never stalled (the caller
        takes every output: ``o.ready`` is ignored, as in :class:`hw.stages.Sweep`). Then no
        skid register is built and ``i.ready`` is constant 1, so ``H = P + b`` goes straight
        from the adder into stage 1 (same latency and interval).

    Members
    -------
    i : In(stream.Signature(FireInLayout))
        ``{index, p, b, last}``; ``last`` marks the last timestep of the inference.
    o : Out(stream.Signature(FireOutLayout))
        ``{index, z, p (P'), h (H)}``.
    clear : In(1)
        Clears ``overflow`` and ``saturations``.
    overflow : Out(1)
        Sticky: a saturation happened since the last ``clear``.
    saturations : Out(32)
        Number of saturated additions since the last ``clear``.

    Raises
    ------
    TypeError, ValueError
        On invalid parameters, e.g. ``levels must be a positive integer, not 0``.
    """

    def __init__(self, *, levels, threshold, potential_width, bias_width=16, index_width=1,
                 v0=0, discharge="parallel", readout=False, saturate=False, pipelined=False,
                 reset="soft", leak=0, stalls=True):
        self._levels = check_int("levels", levels, minimum=1)
        self._check_neuron(threshold, potential_width, bias_width, index_width, v0)
        self._discharge = check_choice("discharge", discharge, ("parallel", "serial"))
        self._readout = bool(readout)
        self._hard = check_choice("reset", reset, ("soft", "hard")) == "hard"
        self._leak = check_int("leak", leak, minimum=0, what=f"an integer in 0..{MAX_LEAK}")
        if self._leak > MAX_LEAK:
            raise ValueError(f"leak must be an integer in 0..{MAX_LEAK}, not {leak!r}")
        if self._leak and self._readout:
            raise ValueError(f"leak must be 0 for a readout unit (it never fires), not {leak!r}")
        self._saturate = bool(saturate)
        self._pipelined = bool(pipelined) and discharge == "parallel" and not self._readout
        self._stalls = bool(stalls)
        super().__init__({
            "i": In(stream.Signature(FireInLayout(self._iw, self._pw, self._bw))),
            "o": Out(stream.Signature(FireOutLayout(self._iw, self._pw, self._levels))),
            "clear": In(1),
            "overflow": Out(1),
            "saturations": Out(COUNTER_WIDTH),
        })

    def _check_neuron(self, threshold, potential_width, bias_width, index_width, v0):
        """θ, the widths and v0 (which must fit the potential width) of a neuron stage."""
        self._threshold = check_int("threshold", threshold, minimum=1)
        self._pw = check_int("potential_width", potential_width, minimum=2)
        self._bw = check_int("bias_width", bias_width, minimum=1)
        self._iw = check_int("index_width", index_width, minimum=1)
        self._v0 = check_int("v0", v0)
        lo, hi = -(1 << (self._pw - 1)), (1 << (self._pw - 1)) - 1
        if not lo <= v0 <= hi:
            raise ValueError(f"v0 ({v0}) does not fit the potential width {self._pw} "
                             f"([{lo}, {hi}])")

    @property
    def latency(self):
        """Cycles from the cycle of an input handshake to the first cycle the output is valid
        (1: the output is valid in the cycle right after the handshake)."""
        return fire_timing(discharge=self._discharge, levels=self._levels,
                           readout=self._readout, pipelined=self._pipelined)[0]

    @property
    def interval(self):
        """Cycles between two neurons when the output is never stalled."""
        return fire_timing(discharge=self._discharge, levels=self._levels,
                           readout=self._readout, pipelined=self._pipelined)[1]

    def _leaked(self, m, r, name):
        """``R − (R >> k)`` of ``r`` as a ``pw``-bit signal (``r`` itself without leak): the
        shift is a slice, ``|R − (R >> k)| <= |R|`` fits the width of R."""
        if not self._leak:
            return r
        r_sig = Signal(signed(self._pw), name=f"{name}_r")
        out = Signal(signed(self._pw), name=f"{name}_leaked")
        m.d.comb += [r_sig.eq(r), out.eq(r_sig - r_sig.shift_right(self._leak))]
        return out

    def _reset_value(self, m, fired, r, name):
        """The potential written before the last timestep: ``R`` after the soft reset (``r``),
        or after the hard one ``v0`` where ``fired`` and ``H`` (``r``) elsewhere, leaked (the
        leaked v0 is a constant)."""
        leaked = self._leaked(m, r, name)
        if not self._hard:
            return leaked
        v0_after = Const(leak_int(self._v0, self._leak), signed(self._pw))
        return Mux(fired, v0_after, leaked)

    def elaborate(self, platform):
        m = Module()
        pw, theta, levels = self._pw, self._threshold, self._levels

        # H = P + b, exact, then saturated to the width when it was forced narrow.
        h_full = self.i.payload.p + self.i.payload.b
        h = Signal(signed(pw))
        sat = Signal()
        saturate(m, h_full, h, sat, enabled=self._saturate)

        accepted = self.i.valid & self.i.ready
        ovf = Signal()
        nsat = Signal(COUNTER_WIDTH)
        m.d.comb += [self.overflow.eq(ovf), self.saturations.eq(nsat)]
        with m.If(self.clear):
            m.d.sync += [ovf.eq(0), nsat.eq(0)]
        with m.Elif(accepted & sat):
            m.d.sync += [ovf.eq(1), nsat.eq(nsat + 1)]

        v0 = Const(self._v0, signed(pw))
        out = self.o.payload
        if self._readout:
            m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
            with m.If(accepted):
                m.d.sync += [
                    self.o.valid.eq(1),
                    out.index.eq(self.i.payload.index),
                    out.z.eq(0),
                    out.h.eq(h),
                    out.p.eq(Mux(self.i.payload.last, v0, h)),
                ]
            with m.Elif(self.o.ready):
                m.d.sync += self.o.valid.eq(0)
        elif self._pipelined:
            # A skid register K in front of stage 1 makes i.ready a register (K empty), so the
            # output's ready does not reach the producer combinationally. Stage 1 registers H
            # (from K first, else from the input); stage 2 registers d_k = H - kθ for k = 1..N
            # at full width (exact, so d_k >= 0 is H >= kθ); stage 3 (the output register)
            # takes z = Σ_k [d_k >= 0] and P' = d_z, so no carry chain is followed by a
            # multiplexer in the same cycle.
            # Without stalls (the caller never stalls o) K stays empty: no skid is built.
            k_valid = Signal(name="k_valid") if self._stalls else Const(0, 1)
            k_index = Signal(unsigned(self._iw))
            k_h = Signal(signed(pw))
            k_last = Signal()
            s1_valid = Signal()
            s1_index = Signal(unsigned(self._iw))
            s1_h = Signal(signed(pw))
            s1_last = Signal()
            s1_load = Signal()
            s2_accept = Signal()        # stage 2 takes stage 1's neuron
            s3_accept = Signal()        # the output register takes stage 2's neuron
            s2_valid = Signal()
            m.d.comb += [
                s3_accept.eq((~self.o.valid | self.o.ready) if self._stalls else 1),
                s2_accept.eq(~s2_valid | s3_accept),
                self.i.ready.eq(~k_valid),
                s1_load.eq((k_valid | self.i.valid) & (~s1_valid | s2_accept)),
            ]
            with m.If(s1_load):
                m.d.sync += s1_valid.eq(1)
                with m.If(k_valid):
                    m.d.sync += [s1_index.eq(k_index), s1_h.eq(k_h), s1_last.eq(k_last)]
                with m.Else():
                    m.d.sync += [s1_index.eq(self.i.payload.index), s1_h.eq(h),
                                 s1_last.eq(self.i.payload.last)]
            with m.Elif(s2_accept):
                m.d.sync += s1_valid.eq(0)
            if self._stalls:
                with m.If(k_valid):
                    with m.If(s1_load):
                        m.d.sync += k_valid.eq(0)
                with m.Elif(accepted & ~s1_load):
                    m.d.sync += [k_valid.eq(1), k_index.eq(self.i.payload.index), k_h.eq(h),
                                 k_last.eq(self.i.payload.last)]
            dw = pw + (levels * theta).bit_length() + 1
            s2_index = Signal(unsigned(self._iw))
            s2_h = Signal(signed(pw))
            s2_last = Signal()
            diffs = [s2_h]
            ges = []
            with m.If(s1_valid & s2_accept):
                m.d.sync += [s2_valid.eq(1), s2_index.eq(s1_index), s2_h.eq(s1_h),
                             s2_last.eq(s1_last)]
            with m.Elif(s3_accept):
                m.d.sync += s2_valid.eq(0)
            for k in range(1, levels + 1):
                d = Signal(signed(dw), name=f"d{k}")
                with m.If(s1_valid & s2_accept):
                    m.d.sync += d.eq(s1_h - k * theta)
                diffs.append(d)
                ges.append(~d[-1])
            z = Signal(unsigned(value_width(levels)))
            m.d.comb += z.eq(sum(g.as_unsigned() for g in ges))
            # The comparisons are monotone in k: P' = d_k for the largest k with d_k >= 0,
            # selected one-hot (d_k >= 0 and d_k+1 < 0) by an AND-OR of registers.
            sels = [~ges[0]] + [ges[k - 1] & (~ges[k] if k < levels else 1)
                                for k in range(1, levels + 1)]
            p_next = Signal(signed(pw))
            if self._hard:
                # Hard reset: P' is v0 whenever d_1 >= 0 (selected at the output), else H.
                sels, diffs = sels[:1], diffs[:1]
            terms = [Mux(sel, d[:pw], 0) for sel, d in zip(sels, diffs)]
            m.d.comb += p_next.eq(_or_all(terms))
            p_after = self._reset_value(m, ges[0], p_next, "s3")
            with m.If(s2_valid & s3_accept):
                m.d.sync += [
                    self.o.valid.eq(1),
                    out.index.eq(s2_index),
                    out.z.eq(z),
                    out.h.eq(s2_h),
                    out.p.eq(Mux(s2_last, v0, p_after)),
                ]
            with m.Elif(self.o.ready):
                m.d.sync += self.o.valid.eq(0)
        elif self._discharge == "parallel":
            # z = Σ_k [H >= kθ] for k = 1..N; the comparisons are against constants.
            z = Signal(unsigned(value_width(levels)))
            m.d.comb += z.eq(sum((h >= k * theta).as_unsigned() for k in range(1, levels + 1)))
            m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
            p_after = self._reset_value(m, z != 0, h if self._hard else h - z * theta, "par")
            with m.If(accepted):
                m.d.sync += [
                    self.o.valid.eq(1),
                    out.index.eq(self.i.payload.index),
                    out.z.eq(z),
                    out.h.eq(h),
                    out.p.eq(Mux(self.i.payload.last, v0, p_after)),
                ]
            with m.Elif(self.o.ready):
                m.d.sync += self.o.valid.eq(0)
        else:
            # N micro-steps: if H_n >= θ then H_n+1 = H_n - θ and one more spike (seed 000).
            acc = Signal(signed(pw))
            z = Signal(unsigned(value_width(levels)))
            step = Signal(range(levels + 1))
            last = Signal()
            busy = Signal()
            m.d.comb += self.i.ready.eq(~busy & ~self.o.valid)
            with m.If(accepted):
                m.d.sync += [
                    busy.eq(1), acc.eq(h), z.eq(0), step.eq(0), last.eq(self.i.payload.last),
                    out.index.eq(self.i.payload.index), out.h.eq(h),
                ]
            fire = acc >= theta
            nacc = Mux(fire, acc - theta, acc)
            nz = Mux(fire, z + 1, z)
            p_after = self._reset_value(m, nz != 0, nacc, "ser")
            with m.If(busy):
                m.d.sync += [acc.eq(nacc), z.eq(nz), step.eq(step + 1)]
                with m.If(step == levels - 1):
                    m.d.sync += [
                        busy.eq(0), self.o.valid.eq(1),
                        out.z.eq(nz),
                        out.p.eq(Mux(last, v0, p_after)),
                    ]
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += self.o.valid.eq(0)
        return m


class BitSerialInLayout(data.StructLayout):
    """:class:`FireInLayout` and the sweep number ``step`` of the inference (0 … S − 1)."""

    def __init__(self, index_width, potential_width, bias_width, sweeps):
        super().__init__({
            "index": unsigned(index_width),
            "p": signed(potential_width),
            "b": signed(bias_width),
            "last": unsigned(1),
            "step": range(sweeps),
        })


def bitserial_sweeps(timesteps, readout=False):
    """Sweeps of a bit-serial core per inference (docs/bitserial.md §5): T − 1 doubling sweeps
    and T fire sweeps (a readout: T − 1 doubling sweeps and its final sweep)."""
    return timesteps if readout else 2 * timesteps - 1


class BitSerialUnit(wiring.Component):
    """The neuron stage of a bit-serial core (docs/bitserial.md), one neuron per cycle.

    Per sweep ``step`` s of the inference (the sweep passes it with every neuron)::

        s < T − 1 (doubling sweep):       P' = 2·P                         (no spike)
        s = T − 1 + k, k = 0 … T − 1:     H  = P + (b + v0 if k = 0 else 0)
                                          z  = [H ≥ θ·2^(T−1−k)]
                                          P' = H − z·θ·2^(T−1−k)   (0 at k = T − 1)

    A readout unit (``readout=True``, T sweeps): ``P' = 2·P`` for s < T − 1; at s = T − 1,
    ``H = P + b + v0`` (``h``, what the readout emits), ``z = 0``, ``P' = 0``. The thresholds
    θ·2^(T−1−k) are constants selected by k (no shifter is built).

    Timing: latency 1 cycle, one neuron per cycle; ``o.valid`` is a register and a stalled
    output holds the unit (``i.ready`` low), as for :class:`FireUnit`'s parallel unit.

    Parameters
    ----------
    threshold : int
        θ >= 1, the value of the least significant output bit.
    timesteps : int
        T >= 1.
    potential_width, bias_width, index_width : int
        As for :class:`FireUnit`; the potential width must hold θ·2^(T−1) and 2·P (the static
        bound of docs/bitserial.md §3 guarantees both).
    v0 : int
        The rounding offset added once, with the bias (θ // 2 rounds to nearest).
    readout : bool

    Members
    -------
    i : In(stream.Signature(BitSerialInLayout))
    o : Out(stream.Signature(FireOutLayout))
        ``{index, z (0 or 1), p (P'), h (H)}``.
    clear : In(1)
    overflow, saturations : Out
        Always 0 (a bit-serial layer cannot saturate), for the core's counters.
    """

    def __init__(self, *, threshold, timesteps, potential_width, bias_width=16, index_width=1,
                 v0=0, readout=False):
        self._T = check_int("timesteps", timesteps, minimum=1)
        FireUnit._check_neuron(self, threshold, potential_width, bias_width, index_width, v0)
        self._readout = bool(readout)
        top = self._threshold << (self._T - 1)
        if top > (1 << (self._pw - 1)) - 1:
            raise ValueError(f"threshold x 2^(timesteps-1) ({top}) does not fit the potential "
                             f"width {self._pw}")
        self._S = bitserial_sweeps(self._T, self._readout)
        super().__init__({
            "i": In(stream.Signature(BitSerialInLayout(self._iw, self._pw, self._bw,
                                                       self._S))),
            "o": Out(stream.Signature(FireOutLayout(self._iw, self._pw, 1))),
            "clear": In(1),
            "overflow": Out(1),
            "saturations": Out(COUNTER_WIDTH),
        })

    latency = 1
    interval = 1

    def elaborate(self, platform):
        m = Module()
        pw, T, theta = self._pw, self._T, self._threshold
        ip, out = self.i.payload, self.o.payload
        first = ip.step == T - 1                  # the first fire sweep adds b + v0
        doubling = ip.step < T - 1
        h = Signal(signed(pw))
        m.d.comb += h.eq(Mux(first, ip.p + ip.b + self._v0, ip.p))
        thr = Signal(signed(pw))
        with m.Switch(ip.step):
            for k in range(self._S - (T - 1)):
                with m.Case(T - 1 + k):
                    m.d.comb += thr.eq(theta << (T - 1 - k))
        fired = Signal()
        if not self._readout:
            m.d.comb += fired.eq(~doubling & (h >= thr))
        p_next = Signal(signed(pw))
        with m.If(doubling):
            m.d.comb += p_next.eq(ip.p << 1)
        with m.Elif(ip.step == self._S - 1):
            m.d.comb += p_next.eq(0)
        with m.Else():
            m.d.comb += p_next.eq(Mux(fired, h - thr, h))
        accepted = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(accepted):
            m.d.sync += [self.o.valid.eq(1), out.index.eq(ip.index), out.z.eq(fired),
                         out.h.eq(h), out.p.eq(p_next)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
