"""Random networks and inputs for tests, benchmarks and the regression (``mlsnn regress``).

:func:`random_network` draws a valid :class:`golden.ir.Network` from a seed (dense, conv or
residual topologies, with optional corner cases); :func:`random_inputs` draws inputs for it;
:func:`calibrate_thresholds` picks thresholds from the golden model's currents so that layers
fire at a useful rate. Kept out of :mod:`golden.ir` so that the IR does not depend on
:mod:`golden.reference`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .errors import MlsnnError
from .ir import INPUT, Conv2d, Dense, InputSpec, Join, Network, conv_out_size, signed_width
from .pooling import AvgPool2d, MaxPool2d
from .reference import run

__all__ = ["random_network", "random_inputs", "calibrate_thresholds"]


def random_network(seed, *, kind=None, timesteps=None, levels=None, w_bits=None,
                   in_shape=None, in_bits=None, depth=None, join=None, shortcut=None,
                   max_neurons=48, calibrate=True, non_square=False, conv_readout=False,
                   negative_v0=False, wide_stream_weights=False, narrow_width=False,
                   pool=False, hard_reset=False, leaky=False, lanes=False, early_exit=False,
                   bitserial=False, narrow_fire=False):
    """A random valid network for tests across the project.

    Parameters
    ----------
    seed : int
        Everything is drawn from ``numpy.random.default_rng(seed)``.
    kind : {"dense", "conv", "residual", None}
        Topology family; ``None`` draws one.
    timesteps, levels, w_bits, in_bits : int or None
        Fixed values, or drawn (T ∈ {1, 2, 4}, N ∈ {1, 2, 4, 8}, W_BITS ∈ {3..8}).
    in_shape : tuple or None
        Input shape; drawn small when ``None``.
    depth : int or None
        Number of spiking layers before the readout (dense/conv).
    join : {"barrier", "sew", None}
        Join mode of residual blocks (``kind="residual"``).
    shortcut : {"identity", "conv", None}
        Shortcut of residual blocks: identity, or a 1×1 stride-2 convolution.
    max_neurons : int
        Upper bound on the neurons of any layer (keeps RTL simulations short).
    calibrate : bool
        Choose every threshold from the golden model's currents on random inputs so that
        layers fire at a useful rate (neither silent nor saturated).
    non_square, conv_readout, negative_v0, wide_stream_weights, narrow_width : bool
        Corner cases for the regression (``mlsnn regress``), all off by default (a seed then
        gives the same network as before they existed): an input with H ≠ W (conv and
        residual, drawn input shape only); a Conv2d readout instead of the dense one (conv and
        residual); negative v0 on most neurons and barriers; barrier stream weights drawn
        outside 1..3 (0, negative, up to the 16-bit limit); potential widths forced below the
        safe width of one or more layers, narrow enough that overflow happens on typical
        inputs (see :func:`_narrow_widths`).
    pool : bool
        Pooling layers (conv and residual): ``maxpool2d`` or ``avgpool2d`` with a window that
        tiles its input, sometimes straight on the input, after convolutions and after joins.
        Off by default (a seed then gives the same network as before pooling existed).
    hard_reset : bool
        ``reset="hard"`` (docs/reset.md) on about half of the dense and conv2d layers before
        the readout (at least one when there is any), drawn after the thresholds. Off by
        default (a seed then gives the same network as before the option existed).
    leaky : bool
        An integer ``leak`` k drawn in 1..4 (docs/leak.md) on about half of the dense and
        conv2d layers before the readout (at least one when there is any), drawn after the
        thresholds and the resets. Off by default (a seed then gives the same network as
        before the option existed).
    lanes : bool
        ``lanes`` L > 1 (docs/lanes.md) on about half of the dense and conv2d layers (at least
        one when any can have it), L drawn among the divisors 2, 3, 4 of the layer's outputs;
        a conv2d readout keeps L = 1 (the hardware has no lanes there). A barrier join gets
        L among 2, 4, 8 (powers of two dividing its neurons) with probability 1/2, drawn
        from a generator of its own (``[seed, 0xB1]``) after everything else, so the other
        draws of a seed stay as they were.
    narrow_fire : bool
        With ``lanes``: ``fire_lanes`` F < L (docs/lanes.md, "Fire lanes") on about half of
        the layers with L > 1 (at least one), F drawn among the proper divisors of L; drawn
        after everything else, so a seed keeps its network and only gains fire lanes (a
        barrier join with lanes: F < L with probability 1/2, from its own generator).
    early_exit : bool
        An early exit (docs/early-exit.md) with a random α table: per timestep, α = 0 (every
        image exits at t = 1), α = 2^40 (none exits) or a quantile of the margins on random
        inputs (some exit). Every layer kind takes part (docs/early-exit.md: barrier joins and
        avgpools run an exit sweep, SEW joins and maxpools hold no state), so it goes with
        ``pool`` and ``kind="residual"``; a kind left to the draw is dense or conv (drawn among
        those two, as before joins and pools had an exit: a seed keeps its network), T is 2
        or 4 when drawn and a dense readout has at least 2 neurons. A one-output conv2d
        readout gets no exit (the IR needs two classes).
    bitserial : bool
        The bit-serial twin (docs/bitserial.md, :func:`golden.bitserial.from_multilevel`) of a
        dense or conv network with T = 1 and levels N = 2^k − 1 on every spiking layer (N drawn
        in 1, 3, 7, 15): ``coding="bitserial"``, N = 1 and T = k. Refused with ``pool``,
        ``hard_reset``, ``leaky``, ``narrow_width``, ``lanes``, ``early_exit``, a residual kind
        or a given ``timesteps`` (the IR and the hardware have none of them with it).

    The three are off by default (a seed then gives the same network as before they existed).
    """
    rng = np.random.default_rng(seed)
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    if bitserial:
        _check_bitserial_options(kind, timesteps, levels, pool=pool, hard_reset=hard_reset,
                                 leaky=leaky, narrow_width=narrow_width, lanes=lanes,
                                 early_exit=early_exit)
        kind = kind or pick(["dense", "conv"])
        timesteps, levels = 1, levels or pick([1, 3, 7, 15])
    if early_exit:
        kind = kind or pick(["dense", "conv"])      # residual only when asked (seeds stay stable)
        timesteps = timesteps or pick([2, 4])
    kind = kind or pick(["dense", "conv", "residual"])
    if kind not in ("dense", "conv", "residual"):
        raise MlsnnError(f"random_network: kind must be 'dense', 'conv' or 'residual', "
                         f"not {kind!r}")
    T = timesteps or pick([1, 2, 4])
    in_bits = in_bits or pick([2, 4, 8])

    def lv():
        return levels or pick([1, 2, 4, 8])

    def wb():
        return w_bits or int(rng.integers(3, 9))

    def weights(shape, bits):
        hi = (1 << (bits - 1)) - 1
        w = rng.integers(-hi, hi + 1, size=shape)
        w[rng.random(shape) < 0.2] = 0
        return w.astype(np.int64)

    def bias(n, bits):
        return rng.integers(-(1 << (bits - 2)), (1 << (bits - 2)), size=n).astype(np.int64)

    layers = []
    if kind == "dense":
        shape = in_shape or (int(rng.integers(2, 17)),)
        n_layers = depth if depth is not None else int(rng.integers(0, 3))
        prev, n_prev = INPUT, math.prod(shape)
        for i in range(n_layers + 1):
            readout = i == n_layers
            n = int(rng.integers(2 if readout and early_exit else 1, min(max_neurons, 24) + 1))
            bits = wb()
            layers.append(Dense(name=f"fc{i}", inputs=(prev,), threshold=1, levels=lv(),
                                weight=weights((n_prev, n), bits), bias=bias(n, bits),
                                w_bits=bits, v0=0, readout=readout))
            prev, n_prev = f"fc{i}", n
    else:
        if in_shape is None:
            c = int(rng.integers(1, 3))
            hw_ = int(rng.integers(4, 8))
            shape = (c, hw_, _other_side(rng, hw_) if non_square else hw_)
        else:
            shape = tuple(in_shape)
        cur = shape
        prev = INPUT
        n_conv = depth if depth is not None else int(rng.integers(1, 3))

        def conv(name, src, cur, *, k=None, s=None, p=None, co=None):
            k = k or pick([1, 2, 3])
            s = s or pick([1, 2])
            p = p if p is not None else (pick([0, 1]) if k > 1 else 0)
            co_max = max(1, max_neurons // max(1, conv_out_size(cur[1], k, s, p)
                                               * conv_out_size(cur[2], k, s, p)))
            co = co or int(rng.integers(1, min(co_max, 4) + 1))
            bits = wb()
            return Conv2d(name=name, inputs=(src,), threshold=1, levels=lv(),
                          weight=weights((cur[0], k, k, co), bits), bias=bias(co, bits),
                          w_bits=bits, stride=s, padding=p)

        def maybe_pool(name, src, cur, p):
            """A pool after ``src`` with probability ``p`` (only with ``pool=True``), its
            window drawn among the sizes that tile ``cur``."""
            if not pool or rng.random() >= p:
                return None
            ks = [k for k in (1, 2, 3) if cur[1] % k == 0 and cur[2] % k == 0]
            ks = [k for k in ks if k > 1] or ks
            k = pick(ks)
            if rng.random() < 0.5:
                return MaxPool2d(name=name, inputs=(src,), kernel=k)
            return AvgPool2d(name=name, inputs=(src,), kernel=k, threshold=1, levels=lv())

        idx = 0
        first = maybe_pool("pool_in", prev, cur, 0.3)
        if first is not None:
            layers.append(first)
            cur, prev = first.out_shape(cur), first.name
        for i in range(n_conv):
            layer = conv(f"conv{idx}", prev, cur)
            if min(layer.out_shape(cur)[1:]) < min(2, min(cur[1:])):
                # keep feature maps of at least 2x2 so that later layers have borders to test
                layer = conv(f"conv{idx}", prev, cur, k=3, s=1, p=1)
            layers.append(layer)
            cur, prev = layer.out_shape(cur), layer.name
            idx += 1
            pl = maybe_pool(f"pool{i}", prev, cur, 0.6)
            if pl is not None:
                layers.append(pl)
                cur, prev = pl.out_shape(cur), pl.name
            if kind == "residual":
                mode = join or pick(["barrier", "sew"])
                sc = shortcut or pick(["identity", "conv"])
                co = cur[0]
                if sc == "conv" and min(cur[1:]) >= 2:
                    a = conv(f"conv{idx}", prev, cur, k=3, s=2, p=1, co=co)
                    idx += 1
                    b_ = conv(f"conv{idx}", a.name, a.out_shape(cur), k=3, s=1, p=1, co=co)
                    idx += 1
                    short = conv(f"short{i}", prev, cur, k=1, s=2, p=0, co=co)
                    branch = [a, b_, short]
                    outs = (b_.name, short.name)
                    cur2 = b_.out_shape(a.out_shape(cur))
                else:
                    a = conv(f"conv{idx}", prev, cur, k=3, s=1, p=1, co=co)
                    idx += 1
                    b_ = conv(f"conv{idx}", a.name, cur, k=3, s=1, p=1, co=co)
                    idx += 1
                    branch = [a, b_]
                    outs = (b_.name, prev)
                    cur2 = cur
                if mode == "sew":
                    # SEW needs equal scales; keep the float scale 1.0 everywhere.
                    jl = Join(name=f"join{i}", inputs=outs, mode="sew")
                else:
                    jlv = lv()      # drawn before the stream weights (seeds stay stable)
                    sw = (_wide_stream_weights(rng) if wide_stream_weights else
                          (int(rng.integers(1, 4)), int(rng.integers(1, 4))))
                    jl = Join(name=f"join{i}", inputs=outs, mode="barrier", threshold=1,
                              levels=jlv, stream_weights=sw)
                layers.extend(branch)
                layers.append(jl)
                prev, cur = jl.name, cur2
                pj = maybe_pool(f"jpool{i}", prev, cur, 0.4)
                if pj is not None and not (mode == "sew" and pj.combine == "max"):
                    layers.append(pj)
                    cur, prev = pj.out_shape(cur), pj.name
        if conv_readout:
            layers.append(_conv_readout(rng, conv, prev, cur, max_neurons))
        else:
            n_out = int(rng.integers(2 if early_exit else 1, 11))
            bits = wb()
            layers.append(Dense(name="fc_out", inputs=(prev,), threshold=1, levels=1,
                                weight=weights((math.prod(cur), n_out), bits),
                                bias=bias(n_out, bits), w_bits=bits, readout=True))
    spec = InputSpec(shape=tuple(shape), in_bits=in_bits)
    net = Network(input=spec, timesteps=T, layers=tuple(layers), name=f"random{seed}")
    if calibrate:
        net = calibrate_thresholds(net, rng)
    if hard_reset:
        net = _hard_resets(net, rng)
    if leaky:
        net = _leaks(net, rng)
    if negative_v0:
        net = _negative_v0(net, rng)
    if narrow_width:
        net = _narrow_widths(net, rng)
    if lanes:
        net = _lanes(net, rng)
    if early_exit:
        net = _early_exit(net, rng)
    if narrow_fire and lanes:
        net = _narrow_fire(net, rng)
    if lanes:       # drawn from a generator of their own: the other draws stay as they were
        net = _barrier_lanes(net, np.random.default_rng([seed, 0xB1]), narrow_fire)
    if bitserial:
        from .bitserial import from_multilevel
        net = from_multilevel(net).replace(name=net.name)
    return net


def _check_bitserial_options(kind, timesteps, levels, **options):
    """One line for an option :func:`random_network` cannot combine with ``bitserial``."""
    on = [name for name, value in options.items() if value]
    if on:
        raise MlsnnError(f"random_network: bitserial cannot be combined with {on[0]} "
                         f"(docs/bitserial.md)")
    if kind == "residual":
        raise MlsnnError("random_network: bitserial needs kind 'dense' or 'conv' (a join has no "
                         "bit-serial form), not 'residual'")
    if timesteps is not None:
        raise MlsnnError("random_network: bitserial draws T itself (T = k bits of the levels); "
                         "give no timesteps")
    if levels is not None and (levels + 1) & levels:
        raise MlsnnError(f"random_network: bitserial needs levels 2^k - 1 (1, 3, 7, 15, ...), "
                         f"not {levels}")


def _lanes(net, rng):
    """``lanes`` among the divisors 2, 3, 4 of the outputs on about half of the dense and
    conv2d layers (at least one when any has such a divisor); never on a conv2d readout."""
    options = {}
    for layer in net.layers:
        if layer.kind not in ("dense", "conv2d") or (layer.kind == "conv2d" and layer.readout):
            continue
        outs = int(layer.weight.shape[-1])      # dense neurons, conv2d output channels
        ls = [L for L in (2, 3, 4) if outs % L == 0]
        if ls:
            options[layer.name] = ls
    chosen = [n for n in options if rng.random() < 0.5]
    if options and not chosen:
        chosen = [list(options)[int(rng.integers(len(options)))]]
    if not chosen:
        return net
    return net.with_lanes({n: options[n][int(rng.integers(len(options[n])))] for n in chosen})


def _barrier_lanes(net, rng, narrow_fire):
    """``lanes`` among the powers of two 2, 4, 8 that divide its neurons on about half of the
    barrier joins; with ``narrow_fire``, ``fire_lanes`` a proper divisor of them on half of
    those."""
    plan_l, plan_f = {}, {}
    for layer in net.layers:
        if layer.kind != "barrier":
            continue
        ls = [L for L in (2, 4, 8) if net.info(layer.name).n_out % L == 0]
        if not ls or rng.random() >= 0.5:
            continue
        plan_l[layer.name] = L = ls[int(rng.integers(len(ls)))]
        if narrow_fire and rng.random() < 0.5:
            fs = [f for f in range(1, L) if L % f == 0]
            plan_f[layer.name] = fs[int(rng.integers(len(fs)))]
    if not plan_l:
        return net
    net = net.with_lanes(plan_l)
    return net.with_fire_lanes(plan_f) if plan_f else net


def _narrow_fire(net, rng):
    """``fire_lanes`` among the proper divisors of L on about half of the layers with L > 1
    (at least one when there is any)."""
    wide = [layer for layer in net.layers if getattr(layer, "lanes", 1) > 1]
    chosen = [layer for layer in wide if rng.random() < 0.5]
    if wide and not chosen:
        chosen = [wide[int(rng.integers(len(wide)))]]
    plan = {}
    for layer in chosen:
        fs = [f for f in range(1, layer.lanes) if layer.lanes % f == 0]
        plan[layer.name] = fs[int(rng.integers(len(fs)))]
    return net.with_fire_lanes(plan) if plan else net


def _early_exit(net, rng, batch=8):
    """A random α table (``confidence="margin"``) on ``net``: per timestep t < T, α = 0 (all
    exit), 2^40 (none exits; the hardware saturates it to its register) or a quantile of the
    margins at t on random inputs plus 0 or 1 (some exit)."""
    from .reference import margins
    if math.prod(net.info(net.readout.name).out_shape) < 2:
        return net
    x = random_inputs(net, batch, seed=int(rng.integers(1 << 31)))
    m = margins(run(net, x).readout_steps)
    alpha = []
    for t in range(net.timesteps - 1):
        r = rng.random()
        if r < 0.15:
            alpha.append(0)
        elif r < 0.3:
            alpha.append(1 << 40)
        else:
            q = float(np.quantile(m[t], rng.uniform(0.3, 1.0)))
            alpha.append(max(0, int(q)) + int(rng.integers(0, 2)))
    return net.replace(early_exit={"confidence": "margin", "alpha": alpha})


def _other_side(rng, side):
    """An input width in 3..8 different from the height ``side``."""
    choices = [w for w in range(3, 9) if w != side]
    return choices[int(rng.integers(len(choices)))]


def _wide_stream_weights(rng):
    """Two barrier stream weights outside the usual 1..3: zero, negative, small and large
    magnitudes up to the signed 16-bit limit of the IR (never both zero)."""
    lim = (1 << 15) - 1
    pool = [0, -1, -2, -3, 4, 5, 7, -8, 31, -100, 1000, -4096, lim, -lim - 1]

    def one():
        if rng.random() < 0.3:
            return int(rng.integers(-64, 65))
        return int(pool[int(rng.integers(len(pool)))])
    sw = (one(), one())
    return sw if sw != (0, 0) else (0, -1)


def _conv_readout(rng, conv, prev, cur, max_neurons):
    """A Conv2d readout on ``cur`` with at most ``max_neurons`` outputs (and at most 16)."""
    limit = max(1, min(max_neurons, 16))
    for _ in range(8):
        k = int(rng.integers(1, min(3, cur[1], cur[2]) + 1))
        s = int(rng.integers(1, 3))
        ho, wo = conv_out_size(cur[1], k, s, 0), conv_out_size(cur[2], k, s, 0)
        if ho * wo <= limit:
            break
    else:
        k, s = min(cur[1], cur[2]), 1    # one output pixel per row/column of the kernel fit
        ho, wo = conv_out_size(cur[1], k, s, 0), conv_out_size(cur[2], k, s, 0)
    co = int(rng.integers(1, max(1, min(4, limit // (ho * wo))) + 1))
    layer = conv("conv_out", prev, cur, k=k, s=s, p=0, co=co)
    return dataclasses.replace(layer, levels=1, readout=True)


def _half_of_the_firing(net, rng):
    """About half of the dense and conv2d layers that fire (at least one when there is any)."""
    names = [l.name for l in net.layers if hasattr(l, "reset") and not l.readout]
    chosen = [n for n in names if rng.random() < 0.5]
    if names and not chosen:
        chosen = [names[int(rng.integers(len(names)))]]
    return chosen


def _hard_resets(net, rng):
    """``reset="hard"`` on about half of the spiking layers that fire (at least one)."""
    chosen = set(_half_of_the_firing(net, rng))
    return net.replace(layers=tuple(dataclasses.replace(l, reset="hard") if l.name in chosen
                                    else l for l in net.layers))


def _leaks(net, rng):
    """``leak`` k in 1..4 on about half of the spiking layers that fire (at least one)."""
    leaks = {n: int(rng.integers(1, 5)) for n in _half_of_the_firing(net, rng)}
    return net.replace(layers=tuple(dataclasses.replace(l, leak=leaks[l.name])
                                    if l.name in leaks else l for l in net.layers))


def _negative_v0(net, rng):
    """v0 in [-2θ, -1] for about 70 % of the spiking layers and barriers (the readout too)."""
    layers = []
    for layer in net.layers:
        if hasattr(layer, "threshold") and rng.random() < 0.7:    # not SEW, not maxpool
            layer = dataclasses.replace(layer, v0=-int(rng.integers(1, 2 * layer.threshold + 1)))
        layers.append(layer)
    return net.replace(layers=tuple(layers))


def _narrow_widths(net, rng, batch=16):
    """Force ``potential_width`` below the safe width on one or more layers.

    The width is drawn between the narrowest the hardware accepts (θ·N, v0 and the bias fit)
    and one bit less than the width of the largest |potential| seen on random inputs (the
    readout's accumulated sum, a spiking layer's current), so that for some inputs the
    potential leaves the range and the golden model flags overflow. Layers where no such
    width exists keep theirs; at least one layer is narrowed when any can be.
    """
    x = random_inputs(net, batch, seed=int(rng.integers(1 << 30)))
    cur = run(net, x, record_currents=True).currents
    ranges = {}
    for layer in net.layers:
        if layer.passthrough or not hasattr(layer, "potential_width"):
            continue
        info = net.info(layer.name)
        lo = max(signed_width(layer.threshold * layer.levels), signed_width(abs(layer.v0)), 3)
        if "bias" in layer.arrays:
            lo = max(lo, signed_width(int(np.abs(layer.bias).max(initial=0))))
        c = cur[layer.name].astype(np.int64)
        if not c.size:
            continue
        peak = int(np.abs(c).max())
        if layer.readout:
            peak = max(peak, int(np.abs(layer.v0 + np.cumsum(c, axis=0)).max()))
        hi = min(info.safe_width - 1, signed_width(peak) - 1)
        if hi >= lo:
            ranges[layer.name] = (lo, hi)
    names = list(ranges)
    chosen = [n for n in names if rng.random() < 0.5]
    if names and not chosen:
        chosen = [names[int(rng.integers(len(names)))]]
    layers = []
    for layer in net.layers:
        if layer.name in chosen:
            lo, hi = ranges[layer.name]
            layer = dataclasses.replace(layer, potential_width=int(rng.integers(lo, hi + 1)))
        layers.append(layer)
    return net.replace(layers=tuple(layers))


def random_inputs(net, batch, seed=0, density=0.6):
    """Random unsigned inputs ``[batch, *shape]`` for ``net`` (a fraction are zero)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, net.input.zmax + 1, size=(batch,) + net.input.shape)
    x[rng.random(x.shape) > density] = 0
    return x.astype(np.int64)


def calibrate_thresholds(net, rng, batch=16):
    """Pick every spiking layer's threshold so that it fires at a moderate rate.

    Layer by layer, run the golden reference on random inputs, and set θ so that the typical
    positive per-timestep current (75th percentile) reaches about N/2 levels; a mostly
    inhibitory layer first gets its bias lifted.
    """
    x = random_inputs(net, batch, seed=int(rng.integers(1 << 30)))
    layers = list(net.layers)
    for i, layer in enumerate(layers):
        if layer.readout or not hasattr(layer, "threshold"):
            continue
        probe = Network(input=net.input, timesteps=net.timesteps, layers=tuple(layers),
                        name=net.name)
        res = run(probe, x, record_currents=True)
        cur = res.currents[layer.name].astype(np.float64)
        if "bias" in layer.arrays and cur.size and (cur > 0).mean() < 0.25:
            # Mostly inhibitory: lift the bias so that about a quarter of the currents are
            # positive, else the layer would stay silent.
            shift = int(np.ceil(-np.percentile(cur, 75))) + 1
            lim = (1 << (layer.b_bits - 1)) - 1
            layer = dataclasses.replace(layer, bias=np.clip(layer.bias + shift, -lim - 1, lim))
            cur = cur + shift
        pos = cur[cur > 0]
        mag = float(np.percentile(pos, 75)) if pos.size else 1.0
        theta = max(1, int(round(mag / max(1.0, layer.levels / 2))))
        layers[i] = dataclasses.replace(layer, threshold=theta)
    return Network(input=net.input, timesteps=net.timesteps, layers=tuple(layers), name=net.name)
