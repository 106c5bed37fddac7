"""Bit-exact integer reference simulator of an IR network (SPEC §3, §5).

:func:`run` simulates a :class:`golden.ir.Network` on a batch of inputs, vectorised in torch over
the batch, and returns per-timestep events of every layer, the readout potentials, predictions,
the overflow prediction and every counter of SPEC §5 per layer and per image.

Exactness: all sums are integers below 2**52 (checked against the static bound of every layer),
computed in float64 (exact there) because torch has fast float64 matmul and conv2d but no
integer conv2d. Results are returned as int64 numpy arrays.

Overflow: a layer whose potential width was forced below its safe width may saturate in the
hardware. Per image and layer the reference reports 0 (cannot overflow: the RTL must equal this
model exactly), 1 (may overflow, depending on the order of accumulation) or 2 (certain: a final
sum lies outside the width, so the hardware's sticky flag must rise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .errors import MlsnnError
from .ir import INPUT, Conv2d, Dense, Join, Network

__all__ = ["run", "Result", "COUNTERS", "fire"]

COUNTERS = ("ev_in", "ev_out", "w_rd", "p_rd", "p_wr", "b_rd", "syn_updates", "syn_acc")
_EXACT = 1 << 52


@dataclass
class Result:
    """What :func:`run` returns (all int64 numpy arrays).

    Members
    -------
    predictions : ``[B]`` argmax of the readout potentials, lowest index wins ties.
    readout : ``[B, n_classes]`` readout potentials after timestep T (before the clear).
    events : ``{layer: [T, B, n_out]}`` event values z (0 = no event) of every neuron layer
        (dense, conv2d, barrier join; not the readout, not SEW joins, which have no neurons).
    counters : ``{layer: {counter: [B]}}`` SPEC §5 counters per image.
    overflow : ``{layer: [B]}`` 0 impossible, 1 possible, 2 certain.
    currents : ``{layer: [T, B, n_out]}`` per-timestep input currents (bias included), only
        with ``record_currents=True``.
    """

    predictions: np.ndarray
    readout: np.ndarray
    events: dict
    counters: dict
    overflow: dict
    currents: dict = field(default_factory=dict)

    def totals(self, name):
        """Counters of layer ``name`` summed over the batch, as Python ints."""
        return {k: int(v.sum()) for k, v in self.counters[name].items()}

    @property
    def any_overflow(self):
        return any(bool((v > 0).any()) for v in self.overflow.values())

    def to_json(self, net):
        return {
            "predictions": [int(p) for p in self.predictions],
            "layers": [{"name": l.name, "kind": l.kind if not isinstance(l, Join)
                        else f"join-{l.mode}", "counters": self.totals(l.name),
                        "overflow": _overflow_word(self.overflow[l.name])}
                       for l in net.layers],
            "overflow": self.any_overflow,
        }


def _overflow_word(v):
    m = int(v.max(initial=0))
    return ["no", "possible", "certain"][m]


def fire(h, threshold, levels):
    """Multi-level fire of SPEC §2 on a float64 integer-valued tensor: ``z`` (same dtype)."""
    z = torch.clamp(torch.floor(h / threshold), max=levels)
    return torch.where(h < threshold, torch.zeros_like(h), z)


def _layer_input(streams, ev, t):
    """Per-stream event tensors of timestep t entering a layer."""
    return [ev[s][t] for s in streams]


def run(net: Network, x, *, record_events=True, record_currents=False):
    """Simulate ``net`` on inputs ``x`` ``[B, *input_shape]`` (unsigned integers).

    Returns
    -------
    Result
    """
    if not isinstance(net, Network):
        raise MlsnnError("run: net must be a golden.ir.Network")
    x = net.check_inputs(x)
    B = x.shape[0]
    T = net.timesteps
    for layer in net.layers:
        if net.info(layer.name).bound >= _EXACT:
            raise MlsnnError(f"layer '{layer.name}': its static bound "
                             f"{net.info(layer.name).bound} is too large for the exact "
                             f"float64 reference (max 2**52)")
    xin = torch.from_numpy(x.reshape(B, -1)).to(torch.float64)
    # ev[name][t] = [B, n] float64 event values of every stream source at timestep t.
    ev = {INPUT: [xin] * T}
    events, counters, overflow, currents = {}, {}, {}, {}
    readout = None
    for layer in net.layers:
        info = net.info(layer.name)
        n_out = info.n_out
        cnt = {k: torch.zeros(B, dtype=torch.float64) for k in COUNTERS}
        ovf = torch.zeros(B, dtype=torch.int64)
        if isinstance(layer, Join) and layer.mode == "sew":
            for s in info.streams:
                for t in range(T):
                    nnz = (ev[s][t] > 0).sum(1).to(torch.float64)
                    cnt["ev_in"] += nnz
                    cnt["ev_out"] += nnz
            counters[layer.name] = cnt
            overflow[layer.name] = ovf
            continue
        prim = _Primitive(layer, info)
        fan = torch.from_numpy(prim.fanout).to(torch.float64)
        lo, hi = -(1 << (info.width - 1)), (1 << (info.width - 1)) - 1
        narrow = info.width < info.safe_width
        P = torch.full((B, n_out), float(layer.v0), dtype=torch.float64)
        zs, cur_t = [], []
        for t in range(T):
            # Integrate all events of timestep t (per stream, with the stream's weight).
            I = torch.zeros(B, n_out, dtype=torch.float64)
            pos = torch.zeros(B, n_out, dtype=torch.float64) if narrow else None
            neg = torch.zeros(B, n_out, dtype=torch.float64) if narrow else None
            for k, s in zip(info.stream_src, info.streams):
                z = ev[s][t]
                mask = (z > 0).to(torch.float64)
                cnt["ev_in"] += mask.sum(1)
                nupd = mask @ fan
                cnt["syn_updates"] += nupd
                cnt["syn_acc"] += z @ fan
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
                ovf = torch.maximum(ovf, torch.where(certain, 2, torch.where(possible, 1, 0)))
            if layer.readout:
                P = H
                z = torch.zeros_like(H)
            else:
                z = fire(H, float(layer.threshold), float(layer.levels))
                P = H - z * layer.threshold
                cnt["ev_out"] += (z > 0).sum(1).to(torch.float64)
            zs.append(z)
            if t == T - 1:
                readout = P.clone() if layer.readout else readout
                P = torch.full_like(P, float(layer.v0))
        # Memory accesses follow from the updates: one w read per update (not for joins),
        # one p read and write per update plus T·N_out for the sweeps, one bias read per neuron
        # and timestep (not for joins).
        sweep = float(T * n_out)
        cnt["p_rd"] = cnt["syn_updates"] + sweep
        cnt["p_wr"] = cnt["syn_updates"] + sweep
        if not isinstance(layer, Join):
            cnt["w_rd"] = cnt["syn_updates"].clone()
            cnt["b_rd"] = torch.full((B,), sweep, dtype=torch.float64)
        counters[layer.name] = cnt
        overflow[layer.name] = ovf
        ev[layer.name] = zs
        if record_events and not layer.readout:
            events[layer.name] = torch.stack(zs).to(torch.int64).numpy()
        if record_currents:
            currents[layer.name] = torch.stack(cur_t).to(torch.int64).numpy()
    ro = readout.to(torch.int64).numpy()
    preds = np.argmax(ro, axis=1).astype(np.int64) if ro.shape[1] else np.zeros(B, np.int64)
    return Result(
        predictions=preds, readout=ro, events=events,
        counters={n: {k: v.to(torch.int64).numpy() for k, v in c.items()}
                  for n, c in counters.items()},
        overflow={n: v.numpy() for n, v in overflow.items()}, currents=currents)


class _Primitive:
    """The linear map of one layer from a flat input stream to flat per-neuron currents."""

    def __init__(self, layer, info):
        self.layer = layer
        self.info = info
        self.has_bias = not isinstance(layer, Join)
        if isinstance(layer, Join):
            self.fanout = np.ones(info.n_in, dtype=np.int64)
            self.bias = None
            return
        self.fanout = layer.fanout_counts(info.in_shape)
        w = torch.from_numpy(layer.weight.astype(np.float64))
        if isinstance(layer, Dense):
            self.w = {0: w, 1: torch.clamp(w, min=0), -1: torch.clamp(w, max=0)}
            self.bias = torch.from_numpy(layer.bias.astype(np.float64))
        else:
            wc = w.permute(3, 0, 1, 2).contiguous()   # [C_out, C_in, K, K]
            self.w = {0: wc, 1: torch.clamp(wc, min=0), -1: torch.clamp(wc, max=0)}
            co, ho, wo = info.out_shape
            b = torch.from_numpy(layer.bias.astype(np.float64))
            self.bias = b[:, None, None].expand(co, ho, wo).reshape(-1)

    def apply(self, z, stream, sign=0):
        layer = self.layer
        if isinstance(layer, Join):
            w = float(layer.stream_weights[stream])
            out = z * w
            if sign == 1:
                return torch.clamp(out, min=0)
            if sign == -1:
                return torch.clamp(out, max=0)
            return out
        if isinstance(layer, Dense):
            return z @ self.w[sign]
        B = z.shape[0]
        c, h, w_ = self.info.in_shape
        out = F.conv2d(z.reshape(B, c, h, w_), self.w[sign], stride=layer.stride,
                       padding=layer.padding)
        return out.reshape(B, -1)
