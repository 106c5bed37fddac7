"""Expected token streams from the golden model, and the comparison of an RTL run with it.

Shared by the Amaranth-simulator runners, the cocotb benches and ``mlsnn simulate``, so every
path checks the same things the same way:

* every token of every core (per image and timestep, in sweep order: j ascending); a SEW join
  merges two streams whose events may interleave in any order, so its tokens are compared per
  timestep as multisets (SPEC §3),
* the readout potentials and predictions,
* every counter of SPEC §5 per image,
* the overflow flags: golden 0 (impossible) → flag must be 0 and the results exact; golden 2
  (certain) → flag must be 1,
* the ``saturations`` counter of every layer whose saturating arithmetic the golden model
  predicts exactly (:func:`golden.reference.order_exact`): there a saturated layer is compared
  like any other, bit for bit.

Where a layer whose saturation depends on the arrival order of two streams (a barrier join, a
layer fed by a SEW join) raised its flag, its results and everything downstream may
legitimately differ from the golden model: they are not compared for that image, and the
verdict is ``undetermined`` (never a match; :func:`verdict`). With an early exit (the
network's ``early_exit``) such a saturation may move the timestep at which the image exits,
and so what every layer, upstream too, did after it: an image that then differs anywhere is
``undetermined`` as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from golden.counters import GOLDEN_COUNTERS
from golden.ir import INPUT
from hw.layout import COUNTERS, EventKind

__all__ = ["RtlResult", "Expected", "layer_input_tokens", "layer_expected", "split_timesteps",
           "split_by_steps", "golden_events", "merged_events", "compare", "compare_expected",
           "summary", "verdict", "check_expected", "Verdict",
           "layer_kind", "GOLDEN_COUNTERS"]

EVENT, EOT, READOUT = (int(k.value) for k in (EventKind.EVENT, EventKind.EOT, EventKind.READOUT))


@dataclass
class RtlResult:
    """What an RTL run of a network observed (per image).

    Members
    -------
    events : ``{layer: [B][T] list of (j, z)}`` tokens of every spiking (non-readout) core.
    readout : ``[B, n_classes]`` readout potentials (the ``result`` beats).
    predictions : ``[B]``.
    counters : ``{layer: {counter: [B]}}`` every hardware counter per image.
    overflow : ``{layer: [B]}`` sticky flag per image (0/1).
    cycles : ``[B]`` clock cycles with ``busy`` high, per image.
    """

    events: dict
    readout: np.ndarray
    predictions: np.ndarray
    counters: dict
    overflow: dict
    cycles: np.ndarray
    extra: dict = field(default_factory=dict)

    def to_json(self):
        return {
            "events": {k: [[[list(e) for e in ts] for ts in img] for img in v]
                       for k, v in self.events.items()},
            "readout": np.asarray(self.readout).tolist(),
            "predictions": np.asarray(self.predictions).tolist(),
            "counters": {k: {c: np.asarray(v).tolist() for c, v in d.items()}
                         for k, d in self.counters.items()},
            "overflow": {k: np.asarray(v).tolist() for k, v in self.overflow.items()},
            "cycles": np.asarray(self.cycles).tolist(),
        }

    @classmethod
    def from_json(cls, d):
        return cls(
            events={k: [[[tuple(e) for e in ts] for ts in img] for img in v]
                    for k, v in d["events"].items()},
            readout=np.asarray(d["readout"], dtype=np.int64).reshape(len(d["predictions"]), -1),
            predictions=np.asarray(d["predictions"], dtype=np.int64),
            counters={k: {c: np.asarray(v, dtype=np.int64) for c, v in dd.items()}
                      for k, dd in d["counters"].items()},
            overflow={k: np.asarray(v, dtype=np.int64) for k, v in d["overflow"].items()},
            cycles=np.asarray(d["cycles"], dtype=np.int64))


def golden_events(golden, name, b, t):
    """``[(j, z), ...]`` emitted by layer ``name`` for image b at timestep t, in its emission
    order (j ascending, or ``golden.orders[name]``: a conv2d layer with lanes)."""
    ev = golden.events[name][t, b]
    order = golden.orders.get(name)
    idx = np.nonzero(ev)[0] if order is None else order[ev[order] != 0]
    return [(int(j), int(ev[j])) for j in idx]


def is_sew(layer):
    return layer.passthrough


def merged_events(net, golden, name, b, t, x=None):
    """The events a SEW join ``name`` passes on for image b at timestep t: those of every stream
    it merges, sorted (a multiset: the hardware may interleave them in any order). ``None``
    when a merged stream is the network input and ``x`` is not given."""
    out = []
    steps = getattr(golden, "timesteps", None)
    for s in net.info(name).streams:
        if s == INPUT:
            if x is None:
                return None
            if steps is not None and t >= int(steps[b]):
                continue            # after an early exit the input is not presented again
            flat = np.asarray(x[b]).reshape(-1)
            out += [(int(i), int(v)) for i, v in enumerate(flat) if v > 0]
        else:
            out += golden_events(golden, s, b, t)
    return sorted(out)


def layer_input_tokens(net, name, x, golden, port=0):
    """The token stream entering input ``port`` of core ``name`` for inputs ``x``:
    ``[(kind, index, value)]``.

    A layer fed by the network input sees the pixel events (direct encoding); the others see the
    golden events of their input layer (a SEW join's: the events of every stream it merges).
    Every timestep ends with EOT.
    """
    return _input_tokens(net, net.layer(name).inputs[port], x, golden)


def _input_tokens(net, src, x, golden):
    x = net.check_inputs(x)
    B = x.shape[0]
    tokens = []
    for b in range(B):
        for t in range(net.timesteps):
            if src == INPUT:
                flat = x[b].reshape(-1)
                evs = [(int(i), int(v)) for i, v in enumerate(flat) if v > 0]
            elif is_sew(net.layer(src)):
                evs = merged_events(net, golden, src, b, t, x)
            else:
                evs = golden_events(golden, src, b, t)
            tokens += [(EVENT, i, z) for i, z in evs]
            tokens.append((EOT, 0, 0))
    return tokens


def layer_expected(net, name, golden):
    """Expected output of core ``name``: ``[B][T]`` lists of ``(kind, index, value)`` (no EOT)."""
    layer = net.layer(name)
    T = net.timesteps
    B = golden.predictions.shape[0]
    out = []
    for b in range(B):
        per_t = []
        for t in range(T):
            if layer.readout:
                if t == T - 1:
                    per_t.append([(READOUT, j, int(v)) for j, v in enumerate(golden.readout[b])])
                else:
                    per_t.append([])
            else:
                per_t.append([(EVENT, j, z) for j, z in golden_events(golden, name, b, t)])
        out.append(per_t)
    return out


def split_timesteps(tokens, T):
    """``[(kind, index, value)]`` with EOTs → ``[image][t]`` lists without EOT (complete
    images only) and the tokens left after the last EOT."""
    images, cur, ts = [], [], []
    for tok in tokens:
        if tok[0] == EOT:
            ts.append(cur)
            cur = []
            if len(ts) == T:
                images.append(ts)
                ts = []
        else:
            cur.append(tuple(tok))
    return images, [tok for t_ in ts for tok in t_] + cur


def split_by_steps(tokens, steps, T):
    """Like :func:`split_timesteps` for images that used ``steps[b]`` timesteps (an exited
    image sends ``steps[b]`` EOTs); every image padded with empty timesteps to T."""
    images, rest, k = [], list(tokens), 0
    for n in steps:
        ts, cur = [], []
        while len(ts) < n and k < len(rest):
            tok = rest[k]
            k += 1
            if tok[0] == EOT:
                ts.append(cur)
                cur = []
            else:
                cur.append(tuple(tok))
        if len(ts) < n:
            return images, [tok for t_ in ts for tok in t_] + cur
        images.append(ts + [[] for _ in range(T - int(n))])
    return images, rest[k:]


def _first_diff(got, exp):
    for k in range(max(len(got), len(exp))):
        g = got[k] if k < len(got) else None
        e = exp[k] if k < len(exp) else None
        if g != e:
            return k, g, e
    return None


@dataclass
class Expected:
    """The golden side of a network run in a serialisable form (no torch needed to use it).

    Members
    -------
    layers : ``[(name, readout)]`` in network order.
    timesteps : T.
    events : ``{layer: [B][T] [(j, z)]}`` for the spiking layers (SEW joins: sorted, compared as
        multisets; ``None`` when unknown: a SEW join of the network input without ``x``).
    readout : ``[B][n_classes]``; predictions : ``[B]``.
    counters : ``{layer: {counter: [B]}}`` (the eight golden counters).
    overflow : ``{layer: [B]}`` 0 impossible, 1 possible, 2 certain.
    early_exit : the network has an early exit (an image with an order-dependent saturation
        that differs anywhere is then undetermined as a whole).
    """

    layers: list
    timesteps: int
    events: dict
    readout: list
    predictions: list
    counters: dict
    overflow: dict
    merged: list = field(default_factory=list)     # names of the SEW joins
    saturations: dict = field(default_factory=dict)  # {layer: [B]} where predicted exactly
    early_exit: bool = False

    @classmethod
    def from_golden(cls, net, golden, x=None):
        B = golden.predictions.shape[0]
        T = net.timesteps
        events = {}
        for l in net.layers:
            if l.readout:
                continue
            if is_sew(l):
                per_img = [[merged_events(net, golden, l.name, b, t, x) for t in range(T)]
                           for b in range(B)]
                events[l.name] = None if any(e is None for img in per_img for e in img) \
                    else per_img
            else:
                events[l.name] = [[golden_events(golden, l.name, b, t) for t in range(T)]
                                  for b in range(B)]
        return cls(
            layers=[(l.name, bool(l.readout)) for l in net.layers], timesteps=T,
            events=events,
            readout=golden.readout.tolist(), predictions=golden.predictions.tolist(),
            counters={n: {c: np.asarray(v).tolist() for c, v in d.items()}
                      for n, d in golden.counters.items()},
            overflow={n: np.asarray(v).tolist() for n, v in golden.overflow.items()},
            merged=[l.name for l in net.layers if is_sew(l)],
            saturations={n: np.asarray(v).tolist() for n, v in golden.saturations.items()},
            early_exit=net.early_exit is not None)

    def to_json(self):
        return {"layers": [list(l) for l in self.layers], "timesteps": self.timesteps,
                "events": {k: None if v is None else
                           [[[list(e) for e in ts] for ts in img] for img in v]
                           for k, v in self.events.items()},
                "readout": self.readout, "predictions": self.predictions,
                "counters": self.counters, "overflow": self.overflow, "merged": self.merged,
                "saturations": self.saturations, "early_exit": self.early_exit}

    @classmethod
    def from_json(cls, d):
        return cls(layers=[(n, bool(r)) for n, r in d["layers"]], timesteps=d["timesteps"],
                   events={k: None if v is None else
                           [[[tuple(e) for e in ts] for ts in img] for img in v]
                           for k, v in d["events"].items()},
                   readout=d["readout"], predictions=d["predictions"], counters=d["counters"],
                   overflow=d["overflow"], merged=list(d.get("merged", [])),
                   saturations=dict(d.get("saturations", {})),
                   early_exit=bool(d.get("early_exit", False)))


@dataclass
class Verdict:
    """The outcome of comparing an RTL run with the golden model.

    Members
    -------
    status : ``"match"`` (every compared item equal, nothing left uncompared), ``"mismatch"``
        (``messages`` lists the differences) or ``"undetermined"`` (no difference, but the
        hardware saturated where the result depends on the arrival order of two streams, so
        ``undetermined`` lists the images and layers that could not be compared).
    messages : one line per mismatch, in network order (image, layer, timestep).
    undetermined : one line per image whose comparison stopped at an order-dependent saturation.
    """

    messages: list
    undetermined: list

    @property
    def status(self):
        return "mismatch" if self.messages else "undetermined" if self.undetermined else "match"

    @property
    def match(self):
        return self.status == "match"

    def first_line(self):
        """One line for the user: the first mismatch, or the first undetermined layer."""
        lines = self.messages or self.undetermined
        if not lines:
            return "every token, prediction and counter equals the golden model"
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        return lines[0] + more


def compare(net, golden, rtl, x=None):
    """Compare an :class:`RtlResult` with a golden :class:`~golden.reference.Result`.

    ``x`` (the inputs) is needed only to check the tokens of a SEW join that merges the network
    input itself; without it that join's counters are still compared.

    Returns
    -------
    list of str
        One line per mismatch, then one per image left undetermined by an order-dependent
        saturation (see :func:`verdict`); empty only when everything was compared and equal.
    """
    v = verdict(net, golden, rtl, x)
    return v.messages + v.undetermined


def verdict(net, golden, rtl, x=None):
    """:class:`Verdict` of an RTL run against the golden model (arguments as :func:`compare`)."""
    return check_expected(Expected.from_golden(net, golden, x), rtl)


def compare_expected(exp, rtl):
    """:func:`compare` against an :class:`Expected`."""
    v = check_expected(exp, rtl)
    return v.messages + v.undetermined


def check_expected(exp, rtl):
    """:func:`verdict` against an :class:`Expected`."""
    T = exp.timesteps
    msgs, undetermined = [], []
    for b in range(len(exp.predictions)):
        # With an early exit, an order-dependent saturation may move the exit, and with it
        # what every layer did after the first timestep: differences in such an image are
        # not failures (the image is undetermined).
        deciding = next((name for name, _ in exp.layers if int(rtl.overflow[name][b])
                         and name not in exp.saturations), None) if exp.early_exit else None
        n_msgs, n_und = len(msgs), len(undetermined)
        _check_image(exp, rtl, b, T, msgs, undetermined)
        if deciding is not None and len(msgs) > n_msgs:
            del msgs[n_msgs:], undetermined[n_und:]
            undetermined.append(
                f"image {b}, layer '{deciding}': the potential saturated where the result "
                f"depends on the arrival order of two streams, and the early exit decides "
                f"from it; the image differs from the golden model and was not compared")
    return Verdict(msgs, undetermined)


def _check_image(exp, rtl, b, T, msgs, undetermined):
    """The comparison of image ``b`` (appends to ``msgs`` and ``undetermined``)."""
    saturated = None      # first order-dependent layer whose flag rose: it and downstream
    for name, readout in exp.layers:      # are not compared
        if saturated is not None:
            continue
        g_ovf = int(exp.overflow[name][b])
        flag = int(rtl.overflow[name][b])
        if g_ovf == 0 and flag:
            msgs.append(f"image {b}, layer '{name}': overflow flag is 1 but the golden model "
                        f"says overflow is impossible")
        if g_ovf == 2 and not flag:
            msgs.append(f"image {b}, layer '{name}': overflow flag is 0 but the golden model "
                        f"says overflow is certain")
        exact = name in exp.saturations
        if saturated is None and flag and not exact:
            saturated = name
            undetermined.append(
                f"image {b}, layer '{name}': the potential saturated where the result "
                f"depends on the arrival order of two streams; this layer and those after "
                f"it were not compared")
            continue
        if exact and "saturations" in rtl.counters.get(name, {}):
            g = int(rtl.counters[name]["saturations"][b])
            e = int(exp.saturations[name][b])
            if g != e:
                msgs.append(f"image {b}, layer '{name}', counter saturations: RTL {g}, "
                            f"golden {e}")
        if not readout and exp.events[name] is not None:
            merged = name in exp.merged
            for t in range(T):
                got = [tuple(e) for e in rtl.events[name][b][t]]
                want = [tuple(e) for e in exp.events[name][b][t]]
                if merged:
                    got = sorted(got)
                d = _first_diff(got, want)
                if d is not None:
                    k, g, e = d
                    what = "sorted event" if merged else "event"
                    msgs.append(f"image {b}, layer '{name}', timestep {t + 1}, {what} #{k}: "
                                f"RTL {_fmt(g)}, golden {_fmt(e)}")
                    break
        else:
            d = _first_diff([int(v) for v in rtl.readout[b]], [int(v) for v in exp.readout[b]])
            if d is not None:
                k, g, e = d
                msgs.append(f"image {b}, layer '{name}', readout neuron {k}: RTL potential "
                            f"{g}, golden {e}")
            if int(rtl.predictions[b]) != int(exp.predictions[b]):
                msgs.append(f"image {b}: RTL prediction {int(rtl.predictions[b])}, golden "
                            f"{int(exp.predictions[b])}")
        for c in GOLDEN_COUNTERS:
            g = int(rtl.counters[name][c][b])
            e = int(exp.counters[name][c][b])
            if g != e:
                msgs.append(f"image {b}, layer '{name}', counter {c}: RTL {g}, golden {e}")


def _fmt(ev):
    return "nothing" if ev is None else f"(j={ev[0]}, z={ev[1]})"


def layer_kind(layer):
    """``dense``, ``conv2d``, ``join-barrier`` or ``join-sew`` (as ``mlsnn golden`` prints)."""
    return layer.label


def summary(net, rtl):
    """JSON-ready summary: cycles, predictions, counters summed over the images."""
    return {
        "cycles": int(np.sum(rtl.cycles)),
        "predictions": [int(p) for p in rtl.predictions],
        "layers": [{"name": l.name, "kind": layer_kind(l),
                    "counters": {c: int(np.sum(rtl.counters[l.name][c])) for c in COUNTERS},
                    "overflow": bool(np.any(rtl.overflow[l.name]))}
                   for l in net.layers],
    }
