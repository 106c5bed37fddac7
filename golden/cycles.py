"""Cycle model: each core's busy cycles and the network's cycles per inference, from the IR
and the input, without simulating the RTL (issue 13 §2; the rules are in docs/cycles.md).

Design note
===========

A transaction-level model of :class:`hw.network.NetworkTop` with the defaults of
:func:`sim.amaranth_run.run_network` (no gaps, no stalls, no throttle). The golden model
(:func:`golden.reference.run`) says which events every core receives and emits in each timestep;
this module says *when*. Every token carries the cycle of each handshake it takes part in, and
every block is a server with the timing rules of its RTL, written as recurrences over its
tokens in order::

    streamer ─► Queue ─► core ─► [fork ─►] Queue ─► core ─► … ─► readout core ─► Queue(3) ─► argmax

* A :class:`Queue` (``lib.fifo.SyncFIFOBuffered`` of depth D: D − 1 entries and an output
  register) moves token k to its output register at ``ir_k = max(enq_k + 1, deq_{k−1})``,
  offers it from ``ir_k + 1``, and takes token k once token ``k − D + 1`` has left the store:
  ``enq_k ≥ ir_{k−D+1} + 1``.
* A core's output (:class:`hw.credit.CreditQueue`: store and output register O) offers token k
  from ``max(w_k + 2, e_{k−1} + 1)`` (``w_k`` the cycle it is written), and the sweep issues a
  word only while a credit is free: a credit taken in cycle c and returned in cycle r (a drop
  at the write-back, the O handshake for a token) counts in cycles c + 1 … r + 1.
* Backpressure (a full queue) therefore reaches back through the credits to the sweep and
  through the skid buffers to the queue in front. The network is solved by a fixed-point
  iteration: every core is computed in IR order with the room of its output queues taken from
  the previous pass (none at first); the times only grow from pass to pass, and the pass that
  changes nothing is the answer.
* An early exit (:class:`_Gate`): the decision after timestep t pulses 3 cycles after the
  readout's EOT of t; a go lets timestep t + 1 in a cycle later, an exit starts the exit sweep
  of every core with potentials (layers, barriers, avgpools; a maxpool or a SEW join has none,
  its counter closes with ``exit``) and drops the streamer's rest of the image. Its times come
  from the previous pass too; which images exit, and when, from the golden model.

Images are independent (run_network waits for ``busy`` low between them); only the
round-robin pointer of the joins carries over from one image to the next, as in the RTL.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from .errors import MlsnnError
from .ir import INPUT, Network

__all__ = ["network_cycles", "layer_cycles", "layer_token_cycles", "CycleReport", "unsupported",
           "lanes_up_to",
           "DEFAULT_FIFO_DEPTH", "MAX_JOIN_FIFO_DEPTH", "READOUT_QUEUE_DEPTH",
           "SWEEP_CREDITS", "STREAMER_CREDITS"]

#: Depth of an ordinary inter-core queue (:data:`hw.network.DEFAULT_FIFO_DEPTH`).
DEFAULT_FIFO_DEPTH = 16
#: Upper bound of the default depth of a queue into a join (hw.network.MAX_JOIN_FIFO_DEPTH).
MAX_JOIN_FIFO_DEPTH = 256
#: Depth of the queue after the readout core (hw.network.READOUT_QUEUE_DEPTH).
READOUT_QUEUE_DEPTH = 3
#: Credits of a core's output queue (hw.stages.Sweep ``credits``).
SWEEP_CREDITS = 8
#: Credits of the input streamer's output queue (hw.network.InputStreamer.CREDITS).
STREAMER_CREDITS = 5

EVENT, EOT, READOUT = 0, 1, 2
_NEG = -(1 << 40)           # "long ago": no constraint
_MAX_PASSES = 10_000


@dataclass
class CycleReport:
    """What :func:`network_cycles` returns.

    Members
    -------
    cycles : np.ndarray
        ``[B]`` int64: cycles with ``busy`` high per image, as ``run_network(...).cycles``.
    layers : dict
        ``{layer: [B] int64}``: each core's ``cycles`` counter (SPEC §5), first input token
        to last output token, inclusive.
    options : dict
        ``pixels_per_beat``, ``discharge``, ``synapse``, ``fifo_depth`` of the modelled top.
    passes : np.ndarray
        ``[B]`` int64: fixed-point passes per image, the last one confirming (2: the first
        pass was already right).
    """

    cycles: np.ndarray
    layers: dict
    options: dict = field(default_factory=dict)
    passes: np.ndarray = None

    def to_json(self):
        return {
            "model": "docs/cycles.md",
            "per_image": [int(c) for c in self.cycles],
            "mean": float(np.mean(self.cycles)) if len(self.cycles) else 0.0,
            "layers": {n: [int(c) for c in v] for n, v in self.layers.items()},
            **self.options,
        }


# -- queues, ports, output registers -------------------------------------------------------
class _Queue:
    """One inter-core queue: ``enq`` (writes, filled by the producer), ``ir`` (moves into the
    output register) and ``deq`` (the consumer's handshakes) of this pass; ``room`` comes from
    the previous pass."""

    def __init__(self, depth, src):
        self.depth, self.src = depth, src
        self.prev_ir, self.prev_deq = [], []
        self.reset()

    def reset(self):
        self.enq, self.ir, self.deq = [], [], []

    def new_pass(self):
        self.prev_ir, self.prev_deq = self.ir, self.deq
        self.reset()

    def room(self, k):
        """Earliest cycle token k can be written (from the previous pass)."""
        if self.depth == 1:     # a single register: empty again the cycle after a read
            j, prev = k - 1, self.prev_deq
        else:
            j, prev = k - self.depth + 1, self.prev_ir
        return prev[j] + 1 if 0 <= j < len(prev) else _NEG

    @property
    def tokens(self):
        return self.src.tokens

    def valid(self, k):
        """First cycle token k is offered to the consumer (``deq`` holds tokens < k)."""
        if k == len(self.ir):
            if self.depth == 1:
                self.ir.append(self.enq[k])
            else:
                self.ir.append(max(self.enq[k] + 1, self.deq[k - 1] if k else _NEG))
        return self.ir[k] + 1

    def accept(self, k, cycle):
        assert k == len(self.deq)
        self.deq.append(cycle)


class _Testbench:
    """The producer of :func:`sim.amaranth_run.run_layer` (no gaps): token k offered from the
    cycle after token k − 1 was taken."""

    def __init__(self, tokens):
        self.tokens, self.deq = tokens, []

    def valid(self, k):
        return self.deq[k - 1] + 1 if k else 0

    def accept(self, k, cycle):
        self.deq.append(cycle)


class _Port:
    """A producer's output stream and the queues behind it (a :class:`hw.join.Fork` when
    more than one): ``send`` offers a token from cycle ``o`` and returns its handshake (the
    fork's, when the last queue took it)."""

    def __init__(self):
        self.queues = []
        self.reset()

    def reset(self):
        self.tokens, self.e = [], []

    def send(self, tok, o):
        k = len(self.e)
        e = o
        for q in self.queues:
            c = max(o, q.room(k))
            q.enq.append(c)
            e = max(e, c)
        self.tokens.append(tok)
        self.e.append(e)
        return e


class _Credits:
    """The credit count of a :class:`hw.credit.CreditQueue`: the C largest return cycles of
    the credits taken so far (issues come in order, so only those can still hold one)."""

    def __init__(self, credits):
        self.c, self.heap = credits, []

    def free(self):
        """Earliest cycle (after every earlier issue) with a credit free."""
        return self.heap[0] + 2 if len(self.heap) == self.c else _NEG

    def take(self, ret):
        if len(self.heap) < self.c:
            heapq.heappush(self.heap, ret)
        elif ret > self.heap[0]:
            heapq.heapreplace(self.heap, ret)


class _Out:
    """Q's output register O (one lane): a token written in cycle w is offered from
    ``max(w + 2, e_prev + 1)``; its credit returns at its handshake."""

    def __init__(self, port):
        self.port, self.last = port, _NEG

    def word(self, toks, w):
        self.last = self.port.send(toks[0], max(w + 2, self.last + 1))
        return self.last


class _Serial:
    """Q (words) and the lane serializer of a core with L > 1: the word is offered by O from
    ``max(w + 2, hs_prev + 1)``; the serializer loads a lane when O offers the word and its own
    register is empty or handing over, and pops the word (returning its credit) with its last
    lane; a lane token is offered from the cycle after its load."""

    def __init__(self, port):
        self.port, self.q_hs, self.last = port, _NEG, _NEG

    def word(self, toks, w):
        load = max(w + 2, self.q_hs + 1, self.last)
        for i, tok in enumerate(toks):
            if i:
                load = self.last
            self.last = self.port.send(tok, load + 1)
        self.q_hs = load
        return load


def _sweep(d, words, credits, out, lat, interval, eot=True):
    """The sweep after the drain ended in cycle ``d``: one word issued per cycle while a credit
    is free (and, serial fire unit, the unit takes it), written back ``lat`` cycles after the
    unit took it; then the EOT. ``words``: the tokens each word emits. Returns the cycle the
    EOT enters Q (the core integrates again from the next cycle). ``eot=False``: a bit-serial
    doubling sweep (no tokens, no EOT): the cycle after the last write-back."""
    s, tau, wb = d, _NEG, d
    for toks in words:
        s = max(s + 1, credits.free(), tau)
        tau = max(s + 1, tau + interval)
        wb = tau + lat
        credits.take(out.word(toks, wb) if toks else wb)
    if not eot:
        return wb + 1
    done = max(wb + 1, credits.free())
    credits.take(out.word([(EOT, 0, 0)], done))
    return done


# -- static facts of a network's cores -------------------------------------------------------
def _fire_timing(discharge, levels, readout=False, pipelined=False):
    """``(latency, interval)`` of a fire unit (:func:`hw.neuron.fire_timing`)."""
    if pipelined and discharge == "parallel" and not readout:
        return 3, 1
    if discharge == "parallel" or readout:
        return 1, 1
    return levels + 1, levels + 2


def _events_bound(net, src):
    if src == INPUT:
        return net.input.size
    info = net.info(src)
    return info.n_out * (len(info.streams) if net.layer(src).passthrough else 1)


def _fifo_depth(net, src, consumer, fifo_depth):
    """:func:`hw.network.default_fifo_depth`, or every queue ``fifo_depth`` deep."""
    if fifo_depth is not None:
        return fifo_depth
    if net.layer(consumer).n_inputs > 1:
        return min(MAX_JOIN_FIFO_DEPTH, max(DEFAULT_FIFO_DEPTH, _events_bound(net, src) + 1))
    return DEFAULT_FIFO_DEPTH


class _Core:
    """The static timing facts of one core and its per-image emission (from the golden
    events)."""

    def __init__(self, net, layer, discharge, synapse):
        self.name, self.kind = layer.name, layer.kind
        self.readout = layer.readout
        info = net.info(layer.name)
        self.n_out = info.n_out
        self.T = net.timesteps
        self.serial_syn = synapse == "serial"
        self.bitserial = getattr(layer, "coding", "rate") == "bitserial"
        if self.kind in ("dense", "conv2d"):
            self.L = layer.lanes
            self.F = layer.fire         # the sweep issues groups of F lanes (docs/lanes.md)
            self.fan = (layer.fanout_counts(info.in_shape) // self.L).astype(np.int64)
            self.lat, self.interval = _fire_timing(discharge, layer.levels, layer.readout,
                                                   pipelined=True)
            if self.bitserial:          # hw.neuron.BitSerialUnit, whatever the discharge
                self.lat, self.interval = 1, 1
            order = net.emission_order(layer.name)
            self.order = np.arange(self.n_out) if order is None else order
        elif self.kind == "maxpool2d":
            self.L, self.lat, self.interval = 1, 1, 1
        elif self.kind == "avgpool2d":
            self.L = 1
            self.lat, self.interval = _fire_timing(discharge, layer.levels, pipelined=True)
        elif self.kind == "barrier":
            self.L, self.F = layer.lanes, layer.fire    # j ascending, groups of F lanes
            self.lat, self.interval = _fire_timing(discharge, layer.levels)
        elif self.kind == "sew":
            self.L = 1
        else:
            raise MlsnnError(f"cycle model: layer '{layer.name}' of kind '{layer.kind}' has no "
                             f"timing rules")
        if self.kind != "sew":      # the neurons of each swept group, lanes lowest first
            self.F = getattr(self, "F", self.L)
            order = getattr(self, "order", np.arange(self.n_out))
            self.words_of = order.reshape(-1, self.F)
        # early exit: a readout sends its potentials at every timestep and in its exit sweep,
        # a spiking core's exit sweep emits nothing
        self.early_exit = net.early_exit is not None
        # barrier and avgpool cores sweep at the exit too; a maxpool and a SEW join only reset
        # their timestep counters, and their bracket closes in the cycle of ``exit``
        self.exit_sweep = self.kind in ("dense", "conv2d", "barrier", "avgpool2d")
        if self.early_exit and self.exit_sweep:
            self.exit_words = self.words(None) if self.readout else [[]] * len(self.words_of)

    def words(self, ev_t):
        """The tokens each swept word emits, in address order: ``ev_t`` the golden values z of
        the timestep (``None``: a readout's last timestep, every neuron emits)."""
        out = []
        for lanes in self.words_of:
            if ev_t is None:
                out.append([(READOUT, int(j), 0) for j in lanes])
            else:
                out.append([(EVENT, int(j), int(ev_t[j])) for j in lanes if ev_t[j]])
        return out


# -- the cores' recurrences --------------------------------------------------------------------
class _State:
    """What a core's recurrences leave behind: the first input handshake and the handshakes of
    its EOTs (per timestep)."""

    def __init__(self):
        self.first = None
        self.eot_e = []
        self.exit_end = None        # an exited inference: its exit sweep's last write-back


def _layer_run(core, src, sweeps, exit_at=None):
    """:class:`hw.layer.LayerCore`: skid buffer S and decoder D in front of the address
    generator G (one weight word per cycle), the drain, the sweep. ``sweeps[t]`` the words of
    timestep t (timesteps of successive images follow each other). ``exit_at``: the cycle
    ``exit`` pulses after the last token (an exited inference): the exit sweep, every word
    from the next cycle on as a sweep, a readout's emitting its potentials, no EOT."""
    st = _State()
    l_prev = t_prev = g_free = drain = integ = _NEG
    g = rm = km = md = _NEG        # synapse pipe (serial): last G issue, R→K, K→M, M done
    t = 0
    eots_in = 0
    # A bit-serial core (docs/bitserial.md §5): a doubling sweep at the input EOTs 1 … T − 1,
    # then T fire sweeps back to back, the next one starting in the cycle its EOT enters Q.
    doubling = core.bitserial and not core.readout
    for k, (kind, index, value) in enumerate(src.tokens):
        a = max(src.valid(k), l_prev + 1)         # S empty
        src.accept(k, a)
        if st.first is None:
            st.first = a
        lo = max(a, t_prev)                       # D loads when empty or handing over
        if kind == EOT:
            tk = max(lo + 1, g_free, integ)
            d = max(tk + 1, drain)
            eots_in += 1
            if doubling and eots_in % core.T:
                done = _sweep(d, [[]] * len(core.words_of), core.credits, core.outq,
                              core.lat, core.interval, eot=False)
            for _ in range(core.T if doubling and not eots_in % core.T else
                           0 if doubling else 1):
                done = d = _sweep(d, sweeps[t], core.credits, core.outq, core.lat,
                                  core.interval)
                st.eot_e.append(core.outq.last)
                t += 1
            integ = done + 1
        else:
            F = int(core.fan[index])
            if F == 0:                            # no target: leaves D at once
                tk = max(lo + 1, integ)
            else:
                tk = max(lo + 1, g_free, integ)
                if not core.serial_syn:           # adv in tk+1 … tk+F, write 6 cycles later
                    g_free = tk + F
                    drain = g_free + 7
                else:
                    for i in range(F):
                        g = max(g + 1, rm, tk + 1)
                        rm = max(g + 1, km)
                        km = max(rm + 1, md)
                        md = km + value
                    g_free, drain = g, md + 4
        l_prev, t_prev = lo, tk
    _exit(core, st, exit_at, integ)
    return st


def _exit(core, st, exit_at, integ):
    """The end of an exited inference (``exit_at`` the cycle ``exit`` pulses, ``None``: not
    exited): a core with an exit sweep sweeps from the next cycle on (after its last EOT has
    entered Q, ``integ − 1``) and ends with its last write-back; a maxpool or SEW join ends in
    the cycle of ``exit``."""
    if exit_at is None:
        return
    if not core.exit_sweep:
        st.exit_end = exit_at
        return
    st.exit_end = _sweep(max(exit_at, integ - 1), core.exit_words, core.credits, core.outq,
                         core.lat, core.interval, eot=False) - 1


def _pool_run(core, src, sweeps, exit_at=None):
    """:class:`hw.pool.PoolCore`: one event per cycle while integrating; the EOT flag, the
    drain (an event's write 4 cycles after it was taken), the sweep."""
    st = _State()
    a = last_ev = integ = _NEG
    t = 0
    for k, (kind, _, _) in enumerate(src.tokens):
        a = max(src.valid(k), a + 1, integ)
        src.accept(k, a)
        if st.first is None:
            st.first = a
        if kind == EOT:
            d = max(a + 2, last_ev + 5)
            done = _sweep(d, sweeps[t], core.credits, core.outq, core.lat, core.interval)
            st.eot_e.append(core.outq.last)
            integ = done + 1
            t += 1
        else:
            last_ev = a
    _exit(core, st, exit_at, integ)
    return st


def _merge(core, srcs, on_event, on_eots, pri):
    """The round-robin input of the joins (:func:`hw.join._arbitrate`): each cycle the inputs
    that are open and offer a token compete, ``pri`` breaks a tie and flips to the other input
    after each handshake. ``on_event(k, tok, cycle)`` and ``on_eots(cycle)`` (both EOTs in)
    return the earliest cycle of the next handshake. Returns the final ``pri``."""
    st = core.state
    heads, closed, c = [0, 0], [False, False], 0
    while True:
        cand = []
        for k in (0, 1):
            if not closed[k] and heads[k] < len(srcs[k].tokens):
                cand.append((max(c, srcs[k].valid(heads[k]), core.hold), k))
        if not cand:
            return pri
        tmin = min(t for t, _ in cand)
        ks = [k for t, k in cand if t == tmin]
        k = ks[0] if len(ks) == 1 else pri
        tok = srcs[k].tokens[heads[k]]
        srcs[k].accept(heads[k], tmin)
        heads[k] += 1
        pri = 1 - k
        if st.first is None:
            st.first = tmin
        c = tmin + 1
        if tok[0] == EOT:
            closed[k] = True
            if all(closed):
                c = on_eots(tmin)
                closed = [False, False]
        else:
            c = max(c, on_event(k, tok, tmin))


def _barrier_run(core, srcs, sweeps, pri, exit_at=None):
    """:class:`hw.join.BarrierCore`: one event per cycle from either input; after both EOTs the
    drain (an event's write 3 cycles after it was taken), the sweep; ``exit_at``: the exit
    sweep of an exited inference (:func:`_exit`)."""
    core.state = st = _State()
    core.hold = _NEG
    last, integ = [_NEG], [_NEG]

    def on_event(k, tok, cycle):
        last[0] = cycle
        return _NEG

    def on_eots(cycle):
        d = max(cycle + 2, last[0] + 4)
        done = _sweep(d, sweeps[len(st.eot_e)], core.credits, core.outq, core.lat,
                      core.interval)
        st.eot_e.append(core.outq.last)
        integ[0] = done + 1
        return integ[0]
    pri = _merge(core, srcs, on_event, on_eots, pri)
    _exit(core, st, exit_at, integ[0])
    return st, pri


def _sew_run(core, srcs, out, pri, exit_at=None):
    """:class:`hw.join.SewJoin`: an input is taken only when the output register is empty or
    handing over (``core.hold``: the handshake of the last token loaded); an event is offered
    the cycle after it was taken, the EOT the cycle after both input EOTs were; an exited
    inference ends in the cycle of ``exit_at``."""
    core.state = st = _State()
    core.hold = _NEG

    def on_event(k, tok, cycle):
        core.hold = out.send(tok, cycle + 1)
        return _NEG

    def on_eots(cycle):
        load = max(cycle + 1, core.hold)
        core.hold = out.send((EOT, 0, 0), load + 1)
        st.eot_e.append(core.hold)
        return load + 1
    pri = _merge(core, srcs, on_event, on_eots, pri)
    _exit(core, st, exit_at, None)
    return st, pri


def _streamer_run(x_flat, P, T, out, gate=None):
    """:class:`hw.network.InputStreamer`: beats of P pixels accepted from cycle 0, the non-zero
    pixels of a beat issued one per cycle (a beat without one takes a cycle), the next beat
    taken in the cycle of the last one's last event; timestep 0's EOT the cycle after the last
    beat was consumed, then T − 1 replays of the E events and an EOT, one slot per cycle. Each
    slot takes a credit (of 5) and is offered 3 cycles after its issue. ``gate``: the
    :class:`_Gate` of an early exit between the streamer and ``out``. Returns the handshake of
    the last EOT (``done``)."""
    credits = _Credits(STREAMER_CREDITS)
    last = [_NEG]
    t = [0]

    def slot(tok, c):
        c = max(c, credits.free())
        o = max(c + 3, last[0] + 1)
        if gate is None:
            e = out.send(tok, o)
        elif t[0] >= gate.used:         # an exited image's rest: dropped by the gate
            e = max(o, gate.exit + 1)
        else:                           # held until the decision on the timestep before
            e = out.send(tok, max(o, gate.opens[t[0]]))
        t[0] += tok[0] == EOT
        last[0] = e
        credits.take(e)
        return c

    events = [(EVENT, int(i), int(v)) for i, v in enumerate(x_flat) if v > 0]
    p = 0                       # the beat being consumed was accepted in cycle p
    c = _NEG                    # the last issue
    for b in range(0, len(x_flat), P):
        beat = [(EVENT, i, int(v)) for i, v in enumerate(x_flat[b:b + P], b) if v > 0]
        if not beat:
            p = p + 1           # consumed the cycle after it was accepted
            continue
        for tok in beat:
            c = slot(tok, max(c + 1, p + 1))
        p = c
    # p: the cycle the last beat was consumed
    c = slot((EOT, 0, 0), max(c + 1, p + 1))
    for _ in range(T - 1):
        for tok in events:
            c = slot(tok, c + 1)
        c = slot((EOT, 0, 0), c + 1)
    return last[0]


class _Gate:
    """:class:`hw.network.ExitGate` and the decision of an early exit, for one image that uses
    ``used`` timesteps, from the readout queue's EOT handshakes ``r_t`` of the previous pass
    (none in the first): the decision pulses in ``r_t + 3`` (three register stages), a go opens
    the gate for timestep t + 1 from ``r_t + 4``; an exit (``used < T``) pulses every core's
    ``exit`` in ``exit`` = ``r_{used−1} + 3``, and the gate takes and drops the rest of the
    image from the next cycle on."""

    def __init__(self, used, T, eots):
        r = list(eots) + [_NEG] * (T - len(eots))
        self.used = used
        self.opens = [_NEG] + [r[t] + 4 for t in range(T - 1)]
        self.exit = r[used - 1] + 3 if used < T else None


# -- the network --------------------------------------------------------------------------------
def _check_options(net, pixels_per_beat, discharge, synapse, fifo_depth):
    if not isinstance(net, Network):
        raise MlsnnError("cycle model: net must be a golden.ir.Network")
    if discharge not in ("parallel", "serial"):
        raise MlsnnError(f"cycle model: discharge must be 'parallel' or 'serial', not "
                         f"{discharge!r}")
    if synapse not in ("mul", "serial"):
        raise MlsnnError(f"cycle model: synapse must be 'mul' or 'serial', not {synapse!r}")
    n = net.input.size
    if (not isinstance(pixels_per_beat, (int, np.integer)) or isinstance(pixels_per_beat, bool)
            or not 1 <= pixels_per_beat <= n):
        raise MlsnnError(f"cycle model: pixels_per_beat must be an integer in 1 … {n} (the "
                         f"input size), not {pixels_per_beat!r}")
    if fifo_depth is not None and (not isinstance(fifo_depth, (int, np.integer))
                                   or isinstance(fifo_depth, bool) or fifo_depth < 1):
        raise MlsnnError(f"cycle model: fifo_depth must be a positive integer or None, not "
                         f"{fifo_depth!r}")
    reason = unsupported(net)
    if reason:
        raise MlsnnError(f"cycle model: {reason}")


def unsupported(net):
    """Why :class:`hw.network.NetworkTop` cannot be built for ``net`` in a way the model covers
    (a conv2d readout with lanes), or ``None`` (every kind is modelled, with or without an
    early exit)."""
    for layer in net.layers:
        if layer.kind == "conv2d" and layer.readout and layer.lanes > 1:
            return (f"layer '{layer.name}': lanes > 1 on a conv2d readout is not supported by "
                    f"the hardware (lanes {layer.lanes}), so it has no cycle count")
    return None


def lanes_up_to(net, lanes):
    """``net`` with every dense layer and every conv2d layer but a readout at the largest
    divisor of ``lanes`` its outputs allow (output neurons, output channels): a sweep over L
    that every network accepts (docs/lanes.md)."""
    if lanes == 1:
        return net
    d = {}
    for layer in net.layers:
        info = net.info(layer.name)
        if layer.kind == "dense":
            d[layer.name] = math.gcd(lanes, info.n_out)
        elif layer.kind == "conv2d" and not layer.readout:
            d[layer.name] = math.gcd(lanes, info.out_shape[0])
    return net.with_lanes(d)


def _golden_sweeps(core, golden, b):
    """The words of every timestep of image b for a core with a neuron sweep."""
    T = core.T
    if core.readout:
        return [core.words(None if t == T - 1 or core.early_exit else
                           np.zeros(core.n_out, np.int64)) for t in range(T)]
    ev = golden.events[core.name]
    return [core.words(ev[t, b]) for t in range(T)]


def network_cycles(net, x, *, pixels_per_beat=1, discharge="parallel", synapse="mul",
                   fifo_depth=None, golden=None):
    """Predict ``run_network(net, x, pixels_per_beat=P, discharge=, synapse=).cycles`` and every
    core's ``cycles`` counter, image by image, without simulating the RTL.

    Parameters
    ----------
    net : golden.ir.Network
    x : array ``[B, *input_shape]``
    pixels_per_beat : int
        Pixels per beat of the top's ``pixels`` port.
    discharge : {"parallel", "serial"}
    synapse : {"mul", "serial"}
    fifo_depth : int or None
        Every inter-core queue this deep (``NetworkTop(fifo_depth=)``); ``None``: the
        defaults of :func:`hw.network.default_fifo_depth`.
    golden : golden.reference.Result or None
        ``run(net, x)`` when already computed.

    With ``net.early_exit`` an image that exits after t_e < T ends with its exit sweeps: its
    cycles and counters are those of the RTL's exited inference (docs/cycles.md § Early exit).

    Returns
    -------
    CycleReport

    Raises
    ------
    MlsnnError
        An option the hardware does not have, bad inputs, a network the hardware cannot build.
    """
    _check_options(net, pixels_per_beat, discharge, synapse, fifo_depth)
    from .reference import run
    x = net.check_inputs(x)
    golden = golden if golden is not None else run(net, x)
    B, T = x.shape[0], net.timesteps
    cores = [_Core(net, layer, discharge, synapse) for layer in net.layers]
    ports = {INPUT: _Port()}
    for core in cores[:-1]:
        ports[core.name] = _Port()
    ro_port = _Port()
    in_queues = {}
    queues = []
    for k, layer in enumerate(net.layers):
        qs = []
        for src in layer.inputs:
            q = _Queue(_fifo_depth(net, src, layer.name, fifo_depth), ports[src])
            ports[src].queues.append(q)
            qs.append(q)
            queues.append(q)
        in_queues[layer.name] = qs
    roq = _Queue(READOUT_QUEUE_DEPTH, ro_port)
    ro_port.queues.append(roq)
    queues.append(roq)

    cycles = np.zeros(B, np.int64)
    passes = np.zeros(B, np.int64)
    per_layer = {layer.name: np.zeros(B, np.int64) for layer in net.layers}
    pri = {core.name: 0 for core in cores}
    ee = net.early_exit is not None
    for b in range(B):
        sweeps = {c.name: _golden_sweeps(c, golden, b) for c in cores if c.kind != "sew"}
        for q in queues:
            q.reset()                   # the first pass sees no queue full
        x_flat = np.asarray(x[b]).reshape(-1)
        used = int(golden.timesteps[b]) if ee else T
        gate = _Gate(used, T, []) if ee else None
        for n_pass in range(1, _MAX_PASSES + 1):
            for q in queues:
                q.new_pass()
            for p in list(ports.values()) + [ro_port]:
                p.reset()
            done = _streamer_run(x_flat, pixels_per_beat, T, ports[INPUT], gate)
            states, new_pri = {}, {}
            for core in cores:
                out = ro_port if core.readout else ports[core.name]
                srcs = in_queues[core.name]
                if core.kind != "sew":
                    core.credits = _Credits(SWEEP_CREDITS)
                    core.outq = _Serial(out) if core.F > 1 else _Out(out)
                x_exit = gate.exit if ee else None
                if core.kind in ("dense", "conv2d"):
                    states[core.name] = _layer_run(core, srcs[0], sweeps[core.name], x_exit)
                elif core.kind in ("maxpool2d", "avgpool2d"):
                    states[core.name] = _pool_run(core, srcs[0], sweeps[core.name], x_exit)
                elif core.kind == "barrier":
                    states[core.name], new_pri[core.name] = _barrier_run(
                        core, srcs, sweeps[core.name], pri[core.name], x_exit)
                else:
                    states[core.name], new_pri[core.name] = _sew_run(core, srcs, out,
                                                                     pri[core.name], x_exit)
            # the top takes every result beat and EOT as soon as the readout queue offers it
            for k in range(len(roq.tokens)):
                roq.accept(k, roq.valid(k))
            if ee:                      # the decisions of the next pass
                gate = _Gate(used, T, [d for d, tok in zip(roq.deq, roq.tokens)
                                       if tok[0] == EOT])
            if all(q.ir == q.prev_ir and q.deq == q.prev_deq for q in queues):
                break
        else:
            raise MlsnnError(f"cycle model: image {b} did not converge in {_MAX_PASSES} "
                             f"passes")
        pri.update(new_pri)
        passes[b] = n_pass
        beats = [d for d, tok in zip(roq.deq, roq.tokens) if tok[0] == READOUT]
        if used < T:
            # exited: busy until the result has left the argmax (last beat + 2), the gate has
            # dropped the streamer's last EOT and every core has finished its exit sweep
            ends = [states[c.name].exit_end for c in cores]
            cycles[b] = max(beats[-1] + 2, done + 1, max(ends) + 1)
        else:
            cycles[b] = max(roq.deq[-1], beats[-1] + 2 if beats else _NEG)
        for core in cores:
            st = states[core.name]
            last = st.eot_e[-1] if used == T else st.exit_end
            per_layer[core.name][b] = last - st.first + 1
    return CycleReport(cycles=cycles, layers=per_layer, passes=passes,
                       options={"pixels_per_beat": int(pixels_per_beat),
                                "discharge": discharge, "synapse": synapse,
                                "fifo_depth": fifo_depth})


def _without_exit(net):
    """A core on its own runs without the early exit (``run_layer`` builds
    ``LayerCore(early_exit=False)``): ``net`` without it (``golden``, if given, should be too)."""
    return net.replace(early_exit=None) if net.early_exit is not None else net


def layer_token_cycles(net, name, tokens, *, discharge="parallel", synapse="mul", words=None,
                       golden=None, images=None):
    """The ``cycles`` counter of the core of layer ``name`` after
    ``run_layer(core, tokens, n_eot=...)`` (no gaps, no stalls): the tokens offered back to
    back, the output always taken.

    Parameters
    ----------
    tokens : list of (kind, index, value)
        The input stream (EVENT = 0, EOT = 1), timesteps of successive images one after the
        other.
    words : list or None
        Per timestep (of every image, in order), the tokens each swept word emits; ``None``:
        from ``golden`` (``golden.reference.run`` on the images behind ``tokens``).
    images : int or None
        Number of images in ``tokens`` (default: EOTs / T).

    Returns
    -------
    int
        Cycles in which an inference is in the core (the brackets of successive images may
        overlap, as in the RTL's counter).
    """
    net = _without_exit(net)
    layer = net.layer(name)
    if layer.kind not in ("dense", "conv2d", "maxpool2d", "avgpool2d"):
        raise MlsnnError(f"cycle model: layer_token_cycles covers one-input cores, not "
                         f"'{name}' ({layer.kind})")
    _check_options(net, 1, discharge, synapse, None)
    core = _Core(net, layer, discharge, synapse)
    T = net.timesteps
    n_img = images if images is not None else sum(t[0] == EOT for t in tokens) // T
    if words is None:
        words = [w for b in range(n_img) for w in _golden_sweeps(core, golden, b)]
    src = _Testbench([tuple(int(v) for v in t) for t in tokens])
    port = _Port()
    core.credits = _Credits(SWEEP_CREDITS)
    core.outq = _Serial(port) if core.F > 1 else _Out(port)
    run_core = _layer_run if layer.kind in ("dense", "conv2d") else _pool_run
    st = run_core(core, src, words)
    # image b: from its first token taken to its T-th EOT sent; overlaps counted once
    starts, eots, seen = [], st.eot_e, 0
    for k, tok in enumerate(src.tokens):
        if seen % T == 0 and len(starts) == seen // T:
            starts.append(src.deq[k])
        seen += tok[0] == EOT
    total, covered = 0, _NEG
    for b in range(n_img):
        lo, hi = max(starts[b], covered + 1), eots[(b + 1) * T - 1]
        total += max(0, hi - lo + 1)
        covered = max(covered, hi)
    return total


def layer_cycles(net, name, x, *, discharge="parallel", synapse="mul", golden=None):
    """The ``cycles`` counter of core ``name`` fed alone with the golden input stream of ``x``
    (every image, back to back), as ``run_layer(core, layer_input_tokens(net, name, x,
    golden), n_eot=B·T)`` counts it with no gaps and no stalls."""
    from .reference import run
    net = _without_exit(net)
    x = net.check_inputs(x)
    golden = golden if golden is not None else run(net, x)
    layer = net.layer(name)
    src = layer.inputs[0]
    tokens = []
    for b in range(x.shape[0]):
        for t in range(net.timesteps):
            if src == INPUT:
                flat = np.asarray(x[b]).reshape(-1)
                evs = [(int(i), int(v)) for i, v in enumerate(flat) if v > 0]
            elif net.layer(src).passthrough:
                raise MlsnnError(f"cycle model: layer_cycles of '{name}' needs the arrival "
                                 f"order of its SEW join; use network_cycles")
            else:
                ev = golden.events[src][t, b]
                order = net.emission_order(src)
                idx = np.nonzero(ev)[0] if order is None else order[ev[order] != 0]
                evs = [(int(j), int(ev[j])) for j in idx]
            tokens += [(EVENT, i, z) for i, z in evs] + [(EOT, 0, 0)]
    return layer_token_cycles(net, name, tokens, discharge=discharge, synapse=synapse,
                              golden=golden, images=x.shape[0])
