"""A deliberately naive, loop-based event-driven simulator written straight from SPEC §3.

It shares no code with :mod:`golden.reference` (which is vectorised in torch with matmul and
conv2d): every event is scattered to its fan-out with explicit index arithmetic, in the order
the hardware uses. Tests compare the two on random networks.
"""

from golden.ir import INPUT, Conv2d, Dense, Join


def fanout(layer, info, i):
    """Targets ``[(j, weight)]`` of input index i, in hardware order."""
    if isinstance(layer, Dense):
        n_out = layer.out_features
        return [(j, int(layer.weight[i, j])) for j in range(n_out)]
    c, h, w = info.in_shape
    _, ho, wo = info.out_shape
    ci, rem = divmod(i, h * w)
    yi, xi = divmod(rem, w)
    K, S, P = layer.kernel, layer.stride, layer.padding
    out = []
    for ky in range(K):
        for kx in range(K):
            ny, nx = yi + P - ky, xi + P - kx
            if ny % S or nx % S:
                continue
            yo, xo = ny // S, nx // S
            if not (0 <= yo < ho and 0 <= xo < wo):
                continue
            for co in range(layer.out_channels):
                out.append(((co * ho + yo) * wo + xo, int(layer.weight[ci, ky, kx, co])))
    return out


def pool_target(info, kernel, i):
    """The one target of input index i of a k×k, stride-k pool (docs/pooling.md)."""
    c, h, w = info.in_shape
    ci, rem = divmod(i, h * w)
    yi, xi = divmod(rem, w)
    return (ci * (h // kernel) + yi // kernel) * (w // kernel) + xi // kernel


def simulate(net, image, saturations=None):
    """Run one image (flat list of ints). Returns (events, readout, counters).

    A layer whose potential width is forced narrow saturates every addition to the width, as
    the hardware does; ``saturations`` (a dict), when given, receives each layer's number of
    saturated additions. A barrier takes its first input's events before its second's (one of
    the orders the hardware may see).
    """
    T = net.timesteps
    if saturations is None:
        saturations = {}
    flat = [int(v) for v in image]
    # stream[name][t] = list of (index, value) events emitted at timestep t
    stream = {INPUT: [[(i, v) for i, v in enumerate(flat) if v > 0] for _ in range(T)]}
    events, counters, readout = {}, {}, None
    for layer in net.layers:
        info = net.info(layer.name)
        names = ["ev_in", "ev_out", "w_rd", "p_rd", "p_wr", "b_rd", "syn_updates", "syn_acc",
                 "w_rd_words", "p_rd_words", "p_wr_words", "shifts"]
        c = dict.fromkeys(names, 0)         # SPEC §3 layers: no doubling sweeps, shifts = 0
        L = getattr(layer, "lanes", 1)      # words of L neurons j // L (dense)
        if isinstance(layer, Join) and layer.mode == "sew":
            merged = []
            for t in range(T):
                evs = stream[layer.inputs[0]][t] + stream[layer.inputs[1]][t]
                c["ev_in"] += len(evs)
                c["ev_out"] += len(evs)
                merged.append(evs)
            stream[layer.name] = merged
            counters[layer.name] = c
            continue
        n = info.n_out
        if layer.kind == "maxpool2d":
            out_t = []
            for t in range(T):
                M = [0] * n
                for (i, z) in stream[layer.inputs[0]][t]:
                    j = pool_target(info, layer.kernel, i)
                    M[j] = max(M[j], z)
                    for k in ("ev_in", "p_rd", "p_wr", "syn_updates", "syn_acc"):
                        c[k] += 1
                c["p_rd"] += n
                c["p_wr"] += n
                evs = [(j, m) for j, m in enumerate(M) if m > 0]
                c["ev_out"] += len(evs)
                out_t.append(evs)
            stream[layer.name] = events[layer.name] = out_t
            c["p_rd_words"], c["p_wr_words"] = c["p_rd"], c["p_wr"]
            counters[layer.name] = c
            saturations[layer.name] = 0
            continue
        P = [layer.v0] * n
        lo, hi = -(1 << (info.width - 1)), (1 << (info.width - 1)) - 1
        saturations[layer.name] = 0

        def sat(v):
            if lo <= v <= hi:
                return v
            saturations[layer.name] += 1
            return min(max(v, lo), hi)
        out_t = []
        for t in range(T):
            for k, src in enumerate(layer.inputs):
                for (i, z) in stream[src][t]:
                    c["ev_in"] += 1
                    if layer.kind == "avgpool2d":
                        j = pool_target(info, layer.kernel, i)
                        P[j] = sat(P[j] + z)
                        c["p_rd"] += 1
                        c["p_wr"] += 1
                        c["p_rd_words"] += 1
                        c["p_wr_words"] += 1
                        c["syn_updates"] += 1
                        c["syn_acc"] += z
                        continue
                    if isinstance(layer, Join):
                        P[i] = sat(P[i] + z * layer.stream_weights[k])
                        c["p_rd"] += 1
                        c["p_wr"] += 1
                        c["p_rd_words"] += 1
                        c["p_wr_words"] += 1
                        c["syn_updates"] += 1
                        c["syn_acc"] += z
                        continue
                    words = set()
                    for j, w in fanout(layer, info, i):
                        P[j] = sat(P[j] + z * w)
                        c["w_rd"] += 1
                        c["p_rd"] += 1
                        c["p_wr"] += 1
                        c["syn_updates"] += 1
                        c["syn_acc"] += z
                        words.add(j // L)
                    for k in ("w_rd_words", "p_rd_words", "p_wr_words"):
                        c[k] += len(words)
            evs = []
            for j in range(n):
                if isinstance(layer, Join) or layer.kind == "avgpool2d":
                    b = 0
                else:
                    b = int(layer.bias[j // (n // layer.out_channels)]) \
                        if isinstance(layer, Conv2d) else int(layer.bias[j])
                    c["b_rd"] += 1
                c["p_rd"] += 1
                c["p_wr"] += 1
                if j % L == 0:              # the sweep reads and writes one word per L neurons
                    c["p_rd_words"] += 1
                    c["p_wr_words"] += 1
                H = sat(P[j] + b)
                if layer.readout:
                    P[j] = H
                    continue
                z = 0
                # N compare-subtract micro-steps (the paper's form)
                for _ in range(layer.levels):
                    if H >= layer.threshold:
                        H -= layer.threshold
                        z += 1
                P[j] = H
                if z:
                    evs.append((j, z))
                    c["ev_out"] += 1
            if t == T - 1:
                if layer.readout:
                    readout = list(P)
                P = [layer.v0] * n
            out_t.append(evs)
        stream[layer.name] = out_t
        events[layer.name] = out_t
        counters[layer.name] = c
    return events, readout, counters


def check_image(net, res, x, b):
    """Assert that the golden :class:`~golden.reference.Result` ``res`` has this simulator's
    readout and events for image ``b`` of ``x``; return its ``(counters, saturations)``."""
    sats = {}
    events, readout, counters = simulate(net, x[b].reshape(-1), sats)
    assert res.readout[b].tolist() == readout
    for name, per_t in events.items():
        if name == net.readout.name:
            continue
        for t, evs in enumerate(per_t):
            got = [(j, int(z)) for j, z in enumerate(res.events[name][t, b]) if z]
            assert got == evs, (name, t)
    return counters, sats
