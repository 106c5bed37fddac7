"""Bit-exact integer reference simulator of an IR network (SPEC §3, §5).

:func:`run` simulates a :class:`golden.ir.Network` on a batch of inputs, vectorised in torch over
the batch, and returns per-timestep events of every layer, the readout potentials, predictions,
the overflow prediction and every counter of SPEC §5 per layer and per image.

Exactness: all sums are integers below 2**52 (checked against the static bound of every layer),
computed in float64 (exact there) because torch has fast float64 matmul and conv2d but no
integer conv2d. Results are returned as int64 numpy arrays.

Overflow: a layer whose potential width was forced below its safe width may saturate in the
hardware. Where the order of its additions is fixed (:func:`order_exact`: a dense or conv layer
with one input stream) the reference saturates exactly like the hardware, event by event, and
reports 0 (no saturation) or 2 (saturated: the hardware's sticky flag must rise), with events,
potentials and the number of saturations exact. Elsewhere (barrier joins, layers fed by a SEW
join) it reports 0 (cannot overflow: the RTL must equal this model exactly), 1 (may overflow,
depending on the order in which the two streams arrive) or 2 (certain: a final sum lies
outside the width); where such a layer saturates, its results are not predictable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .counters import GOLDEN_COUNTERS as COUNTERS
from .errors import MlsnnError
from .ir import INPUT, Network

__all__ = ["run", "Result", "COUNTERS", "fire", "reset_potential", "order_exact",
           "bitserial_fire", "shifts", "margins", "exit_timesteps"]

_EXACT = 1 << 52


@dataclass
class Result:
    """What :func:`run` returns (all int64 numpy arrays).

    Members
    -------
    predictions : ``[B]`` argmax of the readout potentials, lowest index wins ties.
    readout : ``[B, n_classes]`` readout potentials after timestep T (before the clear).
    events : ``{layer: [T, B, n_out]}`` event values z (0 = no event) of every layer that
        emits events of its own (not the readout, not SEW joins, which pass their inputs on).
    counters : ``{layer: {counter: [B]}}`` per image, the counters of
        :data:`golden.counters.GOLDEN_COUNTERS` (SPEC §5, the word counters, ``shifts``).
    overflow : ``{layer: [B]}`` 0 impossible, 1 possible, 2 certain.
    currents : ``{layer: [T, B, n_out]}`` per-timestep input currents (bias included), only
        with ``record_currents=True``.
    saturations : ``{layer: [B]}`` saturated additions per image (the hardware's
        ``saturations`` counter), for the layers whose saturation is predicted exactly
        (:func:`order_exact`, or not narrow: 0); absent for the others.
    orders : ``{layer: [n_out]}`` the emission order of the layers that do not emit ``j``
        ascending (:meth:`golden.ir.Network.emission_order`: conv2d with lanes).
    timesteps : ``[B]`` timesteps each inference used (docs/early-exit.md): T, or the
        timestep t < T after which it exited.
    readout_steps : ``[T, B, n_classes]`` readout potentials after every timestep (as if no
        image exited; ``readout_steps[timesteps - 1]`` is :attr:`readout`).
    """

    predictions: np.ndarray
    readout: np.ndarray
    events: dict
    counters: dict
    overflow: dict
    currents: dict = field(default_factory=dict)
    saturations: dict = field(default_factory=dict)
    orders: dict = field(default_factory=dict)
    timesteps: np.ndarray = None
    readout_steps: np.ndarray = None

    def totals(self, name):
        """Counters of layer ``name`` summed over the batch, as Python ints."""
        return {k: int(v.sum()) for k, v in self.counters[name].items()}

    @property
    def any_overflow(self):
        return any(bool((v > 0).any()) for v in self.overflow.values())

    @property
    def exact(self):
        """True when every result is what the hardware computes, bit for bit (no layer whose
        saturation depends on the arrival order may overflow)."""
        return all(n in self.saturations or not (v > 0).any() for n, v in self.overflow.items())

    def warnings(self, net):
        """One line per layer that saturates or may saturate (empty when none)."""
        out = []
        for l in net.layers:
            v = self.overflow[l.name]
            info = net.info(l.name)
            why = f"potential_width {info.width} < safe {info.safe_width}"
            if l.name in self.saturations:
                k = int((v > 0).sum())
                if k:
                    out.append(f"layer '{l.name}' saturated in {k} of {len(v)} image(s) "
                               f"({why}); its results are the saturated ones, as the hardware "
                               f"computes them")
                continue
            for code, what in ((2, "saturates"), (1, "may saturate")):
                k = int((v == code).sum())
                if k:
                    out.append(f"layer '{l.name}' {what} in {k} of {len(v)} image(s) ({why}); "
                               f"where it does, the result depends on the arrival order of its "
                               f"input streams and the hardware's results for that image "
                               f"cannot be predicted")
        return out

    def to_json(self, net):
        return {
            "predictions": [int(p) for p in self.predictions],
            **({"timesteps_used": [int(t) for t in self.timesteps]}
               if net.early_exit is not None else {}),
            "layers": [dict({"name": l.name, "kind": l.label, "counters": self.totals(l.name),
                             "overflow": _overflow_word(self.overflow[l.name],
                                                        l.name in self.saturations)},
                            **({"saturations": int(self.saturations[l.name].sum())}
                               if l.name in self.saturations else {}))
                       for l in net.layers],
            "overflow": self.any_overflow,
            "exact": self.exact,
            "warnings": self.warnings(net),
        }


def _overflow_word(v, exact=False):
    m = int(v.max(initial=0))
    if exact:
        return "saturated" if m else "no"
    return ["no", "possible", "certain"][m]


def fire(h, threshold, levels):
    """Multi-level fire of SPEC §2 on a float64 integer-valued tensor: ``z`` (same dtype)."""
    z = torch.clamp(torch.floor(h / threshold), max=levels)
    return torch.where(h < threshold, torch.zeros_like(h), z)


def reset_potential(h, z, threshold, v0, reset="soft", leak=0):
    """The potential after the fire (before the clear at t = T), same dtype as ``h``: R =
    ``H − z·θ`` for ``reset="soft"`` (SPEC §2), ``v0`` where ``z >= 1`` and ``H`` elsewhere
    for ``reset="hard"`` (docs/reset.md); then, with ``leak`` k >= 1, ``R − floor(R / 2^k)``
    (docs/leak.md; exact in float64 for the integers of :func:`run`)."""
    if reset == "hard":
        r = torch.where(z > 0, torch.full_like(h, float(v0)), h)
    else:
        r = h - z * threshold
    return r - torch.floor(r / float(1 << leak)) if leak else r


def _layer_input(streams, ev, t):
    """Per-stream event tensors of timestep t entering a layer."""
    return [ev[s][t] for s in streams]


def margins(readout_steps):
    """The confidence of docs/early-exit.md: largest minus second-largest readout potential
    (equal potentials give 0), ``[T, B]`` int64 from ``[T, B, n_classes]`` (n_classes >= 2)."""
    r = np.sort(np.asarray(readout_steps, dtype=np.int64), axis=-1)
    if r.shape[-1] < 2:
        raise MlsnnError(f"the margin needs at least 2 readout neurons, not {r.shape[-1]}")
    return r[..., -1] - r[..., -2]


def exit_timesteps(readout_steps, alpha):
    """Timesteps used per image (docs/early-exit.md): the first t in 1 .. T-1 with
    ``margin(t) >= alpha[t-1]``, else T. ``readout_steps`` ``[T, B, n_classes]``."""
    m = margins(readout_steps)
    T, B = m.shape
    used = np.full(B, T, dtype=np.int64)
    for t in range(T - 2, -1, -1):          # the earliest exit wins
        used = np.where(m[t] >= int(alpha[t]), t + 1, used)
    return used


def run(net: Network, x, *, record_events=True, record_currents=False):
    """Simulate ``net`` on inputs ``x`` ``[B, *input_shape]`` (unsigned integers).

    With ``net.early_exit`` (docs/early-exit.md) every image stops after the timestep its
    margin first reaches alpha_t: events, readout, prediction and counters are those of the
    timesteps it used (``Result.timesteps``), plus the exit sweep (one potential read and
    write per neuron of every core with potentials).

    Returns
    -------
    Result
    """
    if not isinstance(net, Network):
        raise MlsnnError("run: net must be a golden.ir.Network")
    x = net.check_inputs(x)
    if net.early_exit is None:
        return _run(net, x, None, record_events, record_currents)
    # The timesteps a network computes do not depend on later ones: the full run gives the
    # margins, and the run with the exits masks what the hardware does not spend.
    full = _run(net, x, None, False, False)
    used = exit_timesteps(full.readout_steps, net.early_exit.alpha)
    return _run(net, x, used, record_events, record_currents)


def _run(net, x, used, record_events, record_currents):
    B = x.shape[0]
    T = net.timesteps
    steps = np.full(B, T, dtype=np.int64) if used is None else used
    # act[t] = 1 for the images that compute timestep t (0-based), as float64 [B].
    act = [torch.from_numpy((steps > t).astype(np.float64)) for t in range(T)]
    exited = torch.from_numpy((steps < T).astype(np.float64))
    steps_f = torch.from_numpy(steps.astype(np.float64))
    for layer in net.layers:
        if net.info(layer.name).bound >= _EXACT:
            raise MlsnnError(f"layer '{layer.name}': its static bound "
                             f"{net.info(layer.name).bound} is too large for the exact "
                             f"float64 reference (max 2**52)")
    xin = torch.from_numpy(x.reshape(B, -1)).to(torch.float64)
    # ev[name][t] = [B, n] float64 event values of every stream source at timestep t.
    ev = {INPUT: [xin] * T}
    events, counters, overflow, currents, saturations = {}, {}, {}, {}, {}
    ro_steps = None
    for layer in net.layers:
        info = net.info(layer.name)
        n_out = info.n_out
        cnt = {k: torch.zeros(B, dtype=torch.float64) for k in COUNTERS}
        ovf = torch.zeros(B, dtype=torch.int64)
        if layer.passthrough:
            for s in info.streams:
                for t in range(T):
                    nnz = (ev[s][t] > 0).sum(1).to(torch.float64) * act[t]
                    cnt["ev_in"] += nnz
                    cnt["ev_out"] += nnz
            counters[layer.name] = cnt
            overflow[layer.name] = ovf
            saturations[layer.name] = np.zeros(B, np.int64)
            continue
        prim = layer.golden_map(info)
        if layer.combine == "max":
            zs = []
            for t in range(T):
                z_in = ev[info.streams[0]][t]
                nnz = (z_in > 0).sum(1).to(torch.float64) * act[t]
                cnt["ev_in"] += nnz
                cnt["syn_updates"] += nnz
                cnt["syn_acc"] += nnz           # one comparison per update
                zs.append(prim.max(z_in))
                cnt["ev_out"] += (zs[-1] > 0).sum(1).to(torch.float64) * act[t]
            _finish(layer, info, cnt, steps_f, exited)
            counters[layer.name] = cnt
            overflow[layer.name] = ovf
            saturations[layer.name] = np.zeros(B, np.int64)
            ev[layer.name] = zs
            if record_events:
                events[layer.name] = _masked(zs, act)
            if record_currents:
                currents[layer.name] = torch.stack(zs).to(torch.int64).numpy()
            continue
        fan = torch.from_numpy(prim.fanout).to(torch.float64)
        lo, hi = -(1 << (info.width - 1)), (1 << (info.width - 1)) - 1
        narrow = info.width < info.safe_width
        if getattr(layer, "coding", "rate") == "bitserial":     # never narrow (golden.ir)
            saturations[layer.name] = np.zeros(B, np.int64)
            zs, u, cur_t = _bitserial(prim, fan, layer, info, ev, cnt, T)
            if layer.readout:       # only U after the last timestep (no early exit here)
                ro_steps = [u] * T
        elif narrow and order_exact(net, layer):
            src = info.streams[0]
            zs, ps, ovf, nsat = _saturating(prim, layer, info, ev[src], lo, hi,
                                            None if src == INPUT else net.emission_order(src),
                                            steps)
            for t in range(T):
                _count_inputs(cnt, ev[info.streams[0]][t], fan, act[t])
                if not layer.readout:
                    cnt["ev_out"] += (zs[t] > 0).sum(1).to(torch.float64) * act[t]
            cur_t = [prim.apply(ev[info.streams[0]][t], 0) + prim.bias for t in range(T)] \
                if record_currents else []
            if layer.readout:
                ro_steps = ps
            saturations[layer.name] = nsat.to(torch.int64).numpy()
        else:
            if not narrow:
                saturations[layer.name] = np.zeros(B, np.int64)
            P = torch.full((B, n_out), float(layer.v0), dtype=torch.float64)
            zs, cur_t, ps = [], [], []
            for t in range(T):
                # Integrate all events of timestep t (per stream, with the stream's weight).
                I = torch.zeros(B, n_out, dtype=torch.float64)
                pos = torch.zeros(B, n_out, dtype=torch.float64) if narrow else None
                neg = torch.zeros(B, n_out, dtype=torch.float64) if narrow else None
                for k, s in zip(info.stream_src, info.streams):
                    z = ev[s][t]
                    mask = (z > 0).to(torch.float64)
                    cnt["ev_in"] += mask.sum(1) * act[t]
                    nupd = mask @ fan
                    cnt["syn_updates"] += nupd * act[t]
                    cnt["syn_acc"] += (z @ fan) * act[t]
                    I = I + prim.apply(z, k)
                    if narrow:
                        pos = pos + prim.apply(z, k, sign=1)
                        neg = neg + prim.apply(z, k, sign=-1)
                if prim.has_bias:
                    I = I + prim.bias
                cur_t.append(I)
                H = P + I
                if narrow:
                    # Integration touches P_prev + partial sums; the sweep adds the bias.
                    p_int = P + (I - prim.bias) if prim.has_bias else H
                    certain = ((p_int < lo) | (p_int > hi) | (H < lo) | (H > hi)).any(1)
                    possible = ((P + pos > hi) | (P + neg < lo)).any(1)
                    code = torch.where(certain, 2, torch.where(possible, 1, 0))
                    ovf = torch.maximum(ovf, torch.where(act[t] > 0, code, 0))
                if layer.readout:
                    P = H
                    z = torch.zeros_like(H)
                else:
                    z = fire(H, float(layer.threshold), float(layer.levels))
                    P = reset_potential(H, z, layer.threshold, layer.v0,
                                        getattr(layer, "reset", "soft"),
                                        getattr(layer, "leak", 0))
                    cnt["ev_out"] += (z > 0).sum(1).to(torch.float64) * act[t]
                zs.append(z)
                if layer.readout:
                    ps.append(P.clone())
                if t == T - 1:
                    P = torch.full_like(P, float(layer.v0))
            if layer.readout:
                ro_steps = ps
        _finish(layer, info, cnt, steps_f, exited)
        counters[layer.name] = cnt
        overflow[layer.name] = ovf
        ev[layer.name] = zs
        if record_events and not layer.readout:
            events[layer.name] = _masked(zs, act)
        if record_currents:
            currents[layer.name] = torch.stack(cur_t).to(torch.int64).numpy()
    ro_steps = torch.stack(ro_steps).to(torch.int64).numpy()         # [T, B, n_classes]
    ro = ro_steps[steps - 1, np.arange(B)]
    preds = np.argmax(ro, axis=1).astype(np.int64) if ro.shape[1] else np.zeros(B, np.int64)
    return Result(
        predictions=preds, readout=ro, events=events,
        counters={n: {k: v.to(torch.int64).numpy() for k, v in c.items()}
                  for n, c in counters.items()},
        overflow={n: v.numpy() for n, v in overflow.items()}, currents=currents,
        saturations=saturations,
        orders={l.name: o for l in net.layers
                if (o := net.emission_order(l.name)) is not None},
        timesteps=steps, readout_steps=ro_steps)


def _masked(zs, act):
    """Per-timestep events ``[T, B, n]`` int64, zero where an image had exited."""
    return torch.stack([z * a[:, None] for z, a in zip(zs, act)]).to(torch.int64).numpy()


def order_exact(net, layer):
    """True when the golden model predicts ``layer``'s saturating arithmetic exactly.

    Saturating sums depend on the order of the additions. A dense or conv layer with one input
    stream receives its events in a fixed order (the network input's pixels, or the producer's
    sweep, ``j`` ascending), so its saturated potentials, events and saturation count are
    deterministic. A barrier join, or a layer fed by a SEW join, interleaves two streams in the
    order they arrive, which depends on timing: there the model can only say whether overflow
    is impossible, possible or certain.
    """
    return not layer.passthrough and len(net.info(layer.name).streams) == 1


def bitserial_fire(u, threshold, T):
    """The T binary fires of a bit-serial neuron (docs/bitserial.md §2), MSB first, on a float64
    integer-valued tensor ``u`` (U = acc + b + v0): ``[s(1), …, s(T)]`` (same dtype), s(t) =
    [R ≥ θ·2^(T−t)], R ← R − s(t)·θ·2^(T−t); Σ_t s(t)·2^(T−t) = clip(floor(U/θ), 0, 2^T − 1)."""
    r = u.clone()
    bits = []
    for t in range(T):
        thr = float(threshold << (T - 1 - t))
        s = (r >= thr).to(u.dtype)
        r = r - s * thr
        bits.append(s)
    return bits


def _count_inputs(cnt, z, fan, active=1.0):
    """SPEC §5's input counters of one timestep's events ``z`` ``[B, n_in]`` (fan-out ``fan``),
    for the images still ``active`` (``[B]`` 0/1, or 1: all; docs/early-exit.md)."""
    mask = (z > 0).to(torch.float64)
    cnt["ev_in"] += mask.sum(1) * active
    cnt["syn_updates"] += (mask @ fan) * active
    cnt["syn_acc"] += (z @ fan) * active


def _bitserial(prim, fan, layer, info, ev, cnt, T):
    """A bit-serial layer (docs/bitserial.md): Horner over the T input timesteps, acc ← 2·acc
    + Σ_i w_ij·z_i(t); U = acc + b + v0 once; then T binary fires (or, for the readout, U).
    Returns the per-timestep events, U and the per-timestep currents (bias at t = T)."""
    B = ev[info.streams[0]][0].shape[0]
    acc = torch.zeros(B, info.n_out, dtype=torch.float64)
    cur_t = []
    for t in range(T):
        z = ev[info.streams[0]][t]
        _count_inputs(cnt, z, fan)
        cur = prim.apply(z, 0)
        cur_t.append(cur + prim.bias if t == T - 1 else cur)
        acc = 2 * acc + cur
    u = acc + prim.bias + float(layer.v0)
    if layer.readout:
        return [torch.zeros_like(u)] * T, u, cur_t
    zs = bitserial_fire(u, layer.threshold, T)
    for z in zs:
        cnt["ev_out"] += (z > 0).sum(1).to(torch.float64)
    return zs, u, cur_t


def shifts(net, name):
    """Potential doublings (the Horner step P ← 2P) that layer ``name`` performs per image:
    (T − 1)·N_out for a bit-serial layer (one per neuron at the end of every input timestep
    but the last), 0 otherwise; known from the IR, like the leak's shift-subtracts."""
    return _doublings(net.layer(name), net.timesteps, net.info(name).n_out)


def _doublings(layer, T, n_out):
    """(T − 1)·N_out for a bit-serial layer (readout included), 0 otherwise."""
    if getattr(layer, "coding", "rate") != "bitserial":
        return 0
    return (T - 1) * n_out


def _sweeps(layer, T):
    """Sweeps per image: T (rate); bit-serial T − 1 doubling sweeps and T fire sweeps (the
    readout: one final sweep), with one bias read per neuron (docs/bitserial.md §5)."""
    if getattr(layer, "coding", "rate") != "bitserial":
        return T, T
    return (T if layer.readout else 2 * T - 1), 1


def _finish(layer, info, cnt, steps, exited):
    # Memory accesses follow from the updates: one w read per update (kinds with weights),
    # one p read and write per update plus N_out per sweep, one bias read per neuron and
    # timestep (kinds with a bias; a bit-serial layer reads its bias once). ``steps`` [B]
    # timesteps used; an image that exited (``exited`` [B] 1) adds its exit sweep: one p read
    # and write per neuron, no bias read (docs/early-exit.md; never with bit-serial layers).
    # A max kind has none: its sweep writes 0, so nothing is left in it across timesteps.
    if getattr(layer, "coding", "rate") == "bitserial":
        T = int(steps.max()) if len(steps) else 1
        n_sweeps, n_bias = _sweeps(layer, T)
        sweep = torch.full_like(cnt["ev_in"], float(n_sweeps * info.n_out))
        bias = torch.full_like(cnt["ev_in"], float(n_bias * info.n_out))
        # the doubling sweeps: one shift per neuron (the ``shifts`` counter)
        cnt["shifts"] = torch.full_like(cnt["ev_in"], float(_doublings(layer, T, info.n_out)))
    else:
        sweep = steps * float(info.n_out)
        bias = sweep
    clear = exited * float(0 if layer.combine == "max" else info.n_out)
    cnt["p_rd"] = cnt["syn_updates"] + sweep + clear
    cnt["p_wr"] = cnt["syn_updates"] + sweep + clear
    if "weight" in layer.arrays:
        cnt["w_rd"] = cnt["syn_updates"].clone()
        cnt["b_rd"] = bias.clone()
    # Word accesses: a core with L lanes moves L synapses or neurons per access, and L
    # divides every access count (it divides the output channels; docs/lanes.md).
    lanes = float(getattr(layer, "lanes", 1))
    for name in ("w_rd", "p_rd", "p_wr"):
        cnt[f"{name}_words"] = cnt[name] / lanes
    if layer.kind == "barrier":
        # A barrier's event updates one neuron but reads and writes its whole word; only the
        # sweeps move L neurons per access.
        for name in ("p_rd", "p_wr"):
            cnt[f"{name}_words"] = cnt["syn_updates"] + (cnt[name] - cnt["syn_updates"]) / lanes


def _saturating(prim, layer, info, ev_in, lo, hi, order=None, steps=None):
    """A narrow dense/conv layer with saturating arithmetic, event by event (SPEC §3).

    Like the hardware: every synaptic update is ``P ← sat(P + z·w)`` in the order the events
    arrive (``j`` ascending, or the producer's emission ``order``; the targets of one event are
    distinct, so their order does not matter), and every sweep ``H = sat(P + b)`` before the fire. Returns the per-timestep
    events, the potentials after every timestep, the overflow word (0 or 2: exact) and the
    number of saturated additions per image, counted over the ``steps`` [B] timesteps each
    image used (all T when None).
    """
    T = len(ev_in)
    B = ev_in[0].shape[0]
    w = prim.matrix()                                     # [n_in, n_out]
    P = torch.full((B, info.n_out), float(layer.v0), dtype=torch.float64)
    nsat = torch.zeros(B, dtype=torch.float64)
    zs, ps = [], []
    theta = float(layer.threshold)
    for t in range(T):
        on = torch.ones(B, dtype=torch.float64) if steps is None else \
            torch.from_numpy((steps > t).astype(np.float64))
        z_in = ev_in[t]
        active = (z_in > 0).any(0)
        idx = (torch.nonzero(active).flatten().tolist() if order is None else
               [int(j) for j in order if active[j]])
        for j in idx:
            s = P + z_in[:, j:j + 1] * w[j]
            nsat += ((s < lo) | (s > hi)).sum(1).to(torch.float64) * on
            P = torch.clamp(s, lo, hi)
        h = P + prim.bias if prim.has_bias else P
        nsat += ((h < lo) | (h > hi)).sum(1).to(torch.float64) * on
        h = torch.clamp(h, lo, hi)
        if layer.readout:
            z = torch.zeros_like(h)
            P = h
        else:
            z = fire(h, theta, float(layer.levels))
            P = reset_potential(h, z, theta, layer.v0, getattr(layer, "reset", "soft"),
                                getattr(layer, "leak", 0))
        zs.append(z)
        ps.append(P.clone())
    ovf = torch.where(nsat > 0, 2, 0).to(torch.int64)
    return zs, ps, ovf, nsat
