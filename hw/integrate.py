"""The integrate stages of :class:`hw.layer.LayerCore` in front of the shared accumulator:
the address generator G and the synapse pipe R K M N (see the design note of
:mod:`hw.layer`)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .neuron import check_choice
from .stages import lane

__all__ = ["AddressGenerator", "SynapsePipe", "product_shape"]


def product_shape(zw, w_bits):
    """The shape of z·w for a ``zw``-bit unsigned z and a ``w_bits``-bit signed w."""
    return signed(zw + w_bits + 1)


class AddressGenerator(wiring.Component):
    """G: for each event, one weight address and one target per cycle, output channel fastest,
    then kernel columns (``b``), then kernel rows (``a``).

    An event is loaded with :attr:`start` and its fan-out entry (first weight address
    ``w_base``, first target ``j_base``, ``ny`` kernel rows and ``nx`` columns, all ≥ 1); G
    advances when :attr:`ready` (R can take a weight). The "last" flags of the three loops, their
    AND (:attr:`last`) and :attr:`free` (idle or on its last target) are registers updated
    with the counters, so that the decoder's handshake starts from registers. A layer whose
    events never fan out over more than one pixel (dense, 1×1 kernels) only counts output
    channels: its b and a loops are constant-folded away.

    Parameters
    ----------
    geo : hw.layout.LayerGeometry
    w_depth : int
        Rows of the weight memory.
    z_width : int
    stall_free : bool
        R never holds G (``synapse="mul"``): :attr:`takes` is :attr:`free`, a register.

    Members
    -------
    start : In(1)
    w_base, j_base, ny, nx, z : In
        The fan-out entry and value of the event loaded with :attr:`start`.
    ready : In(1)
    busy, free, last : Out(1)
    adv : Out(1)
        A target is issued this cycle: read W[:attr:`w`]; :attr:`j` and :attr:`z_out` go to R.
    takes : Out(1)
        G can load an event this cycle.
    w, j, z_out : Out
    """

    def __init__(self, *, geo, w_depth, z_width, stall_free):
        self._geo = geo
        self._stall_free = bool(stall_free)
        ny_max, nx_max = max(1, geo.max_ny), max(1, geo.max_nx)
        self._single = ny_max == 1 and nx_max == 1
        super().__init__({
            "start": In(1),
            "w_base": In(range(w_depth)),
            "j_base": In(range(geo.n_out)),
            "ny": In(range(ny_max + 1)),
            "nx": In(range(nx_max + 1)),
            "z": In(z_width),
            "ready": In(1),
            "busy": Out(1),
            "free": Out(1, init=1),
            "last": Out(1),
            "adv": Out(1),
            "takes": Out(1),
            "w": Out(range(w_depth)),
            "j": Out(range(geo.n_out)),
            "z_out": Out(z_width),
        })

    def elaborate(self, platform):
        m = Module()
        geo = self._geo
        c_out = geo.c_out
        single = self._single
        wa, jw = self.w.shape(), self.j.shape()
        g_w, g_j, g_last, g_free = self.w, self.j, self.last, self.free
        g_wab, g_wa = Signal(wa), Signal(wa)
        g_jab, g_ja = Signal(jw), Signal(jw)
        g_co = Signal(range(c_out))
        g_b, g_nx = Signal(self.nx.shape()), Signal(self.nx.shape())
        g_a, g_ny = Signal(self.ny.shape()), Signal(self.ny.shape())
        g_last_co = Signal(name="g_last_co")
        g_last_b = Const(1, 1) if single else Signal(name="g_last_b")
        g_last_a = Const(1, 1) if single else Signal(name="g_last_a")
        one_co = Const(int(c_out == 1), 1)
        m.d.comb += self.adv.eq(self.busy & self.ready)

        with m.If(self.adv):
            with m.If(~g_last_co):
                m.d.sync += [g_co.eq(g_co + 1), g_w.eq(g_w + 1), g_j.eq(g_j + geo.hw_out),
                             g_last_co.eq(g_co + 2 == c_out),
                             g_last.eq((g_co + 2 == c_out) & g_last_b & g_last_a),
                             g_free.eq((g_co + 2 == c_out) & g_last_b & g_last_a)]
            if not single:
                with m.Elif(~g_last_b):
                    m.d.sync += [g_co.eq(0), g_b.eq(g_b + 1), g_last_co.eq(int(c_out == 1)),
                                 g_last_b.eq(g_b + 2 == g_nx),
                                 g_last.eq(one_co & (g_b + 2 == g_nx) & g_last_a),
                                 g_free.eq(one_co & (g_b + 2 == g_nx) & g_last_a),
                                 g_wab.eq(g_wab + geo.w_step_b), g_w.eq(g_wab + geo.w_step_b),
                                 g_jab.eq(g_jab - 1), g_j.eq(g_jab - 1)]
                with m.Elif(~g_last):
                    m.d.sync += [g_co.eq(0), g_b.eq(0), g_a.eq(g_a + 1),
                                 g_last_co.eq(int(c_out == 1)),
                                 g_last_b.eq(g_nx == 1), g_last_a.eq(g_a + 2 == g_ny),
                                 g_last.eq(one_co & (g_nx == 1) & (g_a + 2 == g_ny)),
                                 g_free.eq(one_co & (g_nx == 1) & (g_a + 2 == g_ny)),
                                 g_wa.eq(g_wa + geo.w_step_a), g_wab.eq(g_wa + geo.w_step_a),
                                 g_w.eq(g_wa + geo.w_step_a),
                                 g_ja.eq(g_ja - geo.w_out), g_jab.eq(g_ja - geo.w_out),
                                 g_j.eq(g_ja - geo.w_out)]
            with m.Else():
                m.d.sync += [self.busy.eq(0), g_free.eq(1)]

        if self._stall_free:
            m.d.comb += self.takes.eq(g_free)
        else:
            m.d.comb += self.takes.eq(~self.busy | (self.adv & g_last))

        with m.If(self.start):
            m.d.sync += [
                self.busy.eq(1), self.z_out.eq(self.z),
                g_w.eq(self.w_base), g_wab.eq(self.w_base), g_wa.eq(self.w_base),
                g_j.eq(self.j_base), g_jab.eq(self.j_base), g_ja.eq(self.j_base),
                g_co.eq(0), g_b.eq(0), g_a.eq(0), g_ny.eq(self.ny), g_nx.eq(self.nx),
                g_last_co.eq(int(c_out == 1)),
                g_last.eq(one_co & (self.nx == 1) & (self.ny == 1)),
                g_free.eq(one_co & (self.nx == 1) & (self.ny == 1)),
            ]
            if not single:
                m.d.sync += [g_last_b.eq(self.nx == 1), g_last_a.eq(self.ny == 1)]
        return m


class SynapsePipe(wiring.Component):
    """R, K, M, N: the weight word arrives (R), is registered (K), multiplied by z (M, N), lane
    by lane (``lanes`` weights per word, lane 0 in the low bits).

    ``synapse="mul"``: z·w in two halves, z_lo·w and z_hi·w in M and their sum in N (no DSP:
    a narrow half is a few shifted copies of w and a small adder tree); never stalls.
    ``synapse="serial"``: z additions of w in M (M holds w, so w is read once per update), R,
    K and G wait meanwhile.

    Members
    -------
    adv, j, z : In
        G issues a target word (its weights are read in this cycle).
    w_data : In(lanes × signed(w_bits))
        The weight memory's read data (one cycle after :attr:`adv`).
    ready : Out(1)
        R can take a target (G may advance).
    issue : Out(1)
        M hands its products to N this cycle (the caller's P read address loads :attr:`m_j`).
    m_j : Out
    valid, n_j, product : Out
        The update in N (read P[n_j] in this cycle): the accumulator's input, ``lanes``
        products of :func:`product_shape`.
    busy : Out(1)
        A target is in R, K, M or N.
    """

    def __init__(self, *, n, z_width, w_bits, synapse="mul", lanes=1):
        self._zw, self._wb = z_width, w_bits
        self._synapse = check_choice("synapse", synapse, ("mul", "serial"))
        self._L = lanes
        pw = product_shape(z_width, w_bits).width
        super().__init__({
            "adv": In(1),
            "j": In(range(n)),
            "z": In(z_width),
            "w_data": In(unsigned(lanes * w_bits)),
            "ready": Out(1),
            "issue": Out(1),
            "m_j": Out(range(n)),
            "valid": Out(1),
            "n_j": Out(range(n)),
            "product": Out(unsigned(lanes * pw)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        zw, wb, L = self._zw, self._wb, self._L
        jw = self.j.shape()
        wshape = signed(wb)

        # -- R: w arrives from W; K: w registered (no logic after the block RAM's output) ----
        r_valid = Signal()
        r_j = Signal(jw)
        r_z = Signal(zw)
        r_move = Signal()       # R hands w to K this cycle
        k_valid = Signal()
        k_j = Signal(jw)
        k_z = Signal(zw)
        # No reset: on ECP5 the flow moves k_w into the block RAM's output register (REGMODE
        # OUTREG, see flows/outreg.py), which has none; k_valid tells when k_w is meaningful.
        k_w = Signal(L * wb, reset_less=True)
        k_accept = Signal()
        k_move = Signal()       # K hands w to M this cycle
        m_accept = Signal()
        m.d.comb += [
            k_accept.eq(~k_valid | m_accept),
            self.ready.eq(~r_valid | k_accept),
            r_move.eq(r_valid & k_accept),
            k_move.eq(k_valid & m_accept),
        ]
        with m.If(self.adv):
            m.d.sync += [r_valid.eq(1), r_j.eq(self.j), r_z.eq(self.z)]
        with m.Elif(r_move):
            m.d.sync += r_valid.eq(0)
        with m.If(r_move):
            m.d.sync += [k_valid.eq(1), k_j.eq(r_j), k_z.eq(r_z), k_w.eq(self.w_data)]
        with m.Elif(k_move):
            m.d.sync += k_valid.eq(0)

        # -- M: z·w (mul: two halves; serial: z additions) -----------------------------------
        m_valid = Signal()
        m_z = Signal(zw)
        m_w = Signal(L * wb, reset_less=True)
        prod_shape = product_shape(zw, wb)
        with m.If(k_move):
            m.d.sync += [self.m_j.eq(k_j), m_z.eq(k_z), m_w.eq(k_w)]
        zh = (zw + 1) // 2          # z = z_lo + z_hi << zh
        half_shape = signed(zh + wb + 1)
        ws = [lane(m_w, k, wshape) for k in range(L)]
        products = []
        if self._synapse == "mul":
            def times(z_part, w):
                if len(z_part) <= 4:
                    parts = [Mux(z_part[k], w, 0).as_signed() << k
                             for k in range(len(z_part))]
                    return sum(parts[1:], parts[0])
                return z_part * w
            m.d.comb += [m_accept.eq(1), self.issue.eq(m_valid)]
            m.d.sync += m_valid.eq(k_move)
            for k, w in enumerate(ws):
                sfx = f"{k}" if L > 1 else ""
                m_lo = Signal(half_shape, name=f"m_lo{sfx}")
                m_hi = Signal(half_shape, name=f"m_hi{sfx}")
                m.d.comb += m_lo.eq(times(m_z[:zh], w))
                if zw > zh:
                    m.d.comb += m_hi.eq(times(m_z[zh:], w))
                # -- N: z·w completed (z_lo·w + z_hi·w << zh) ---------------------------------
                n_lo = Signal(half_shape, name=f"n_lo{sfx}")
                n_hi = Signal(half_shape, name=f"n_hi{sfx}")
                with m.If(self.issue):
                    m.d.sync += [n_lo.eq(m_lo), n_hi.eq(m_hi)]
                n_prod = Signal(prod_shape, name=f"n_prod{sfx}")
                m.d.comb += n_prod.eq(n_lo + (n_hi << zh))
                products.append(n_prod)
        else:
            m_k = Signal(zw)
            m_done = Signal()
            m.d.comb += [
                m_done.eq(m_valid & (m_k + 1 >= m_z)),
                m_accept.eq(~m_valid | m_done),
                self.issue.eq(m_done),
            ]
            with m.If(m_valid & ~m_done):
                m.d.sync += m_k.eq(m_k + 1)
            with m.If(k_move):
                m.d.sync += [m_valid.eq(1), m_k.eq(0)]
            with m.Elif(m_done):
                m.d.sync += m_valid.eq(0)
            for k, w in enumerate(ws):
                sfx = f"{k}" if L > 1 else ""
                m_acc = Signal(prod_shape, name=f"m_acc{sfx}")
                m_prod = Signal(prod_shape, name=f"m_prod{sfx}")
                m.d.comb += m_prod.eq(m_acc + Mux(m_z != 0, w, 0))
                with m.If(m_valid & ~m_done):
                    m.d.sync += m_acc.eq(m_prod)
                with m.If(k_move):
                    m.d.sync += m_acc.eq(0)
                # -- N: the sum registered ----------------------------------------------------
                n_sum = Signal(prod_shape, name=f"n_sum{sfx}")
                with m.If(self.issue):
                    m.d.sync += n_sum.eq(m_prod)
                products.append(n_sum)

        m.d.sync += self.valid.eq(self.issue)
        with m.If(self.issue):
            m.d.sync += self.n_j.eq(self.m_j)
        m.d.comb += [self.product.eq(Cat(*products)),
                     self.busy.eq(r_valid | k_valid | m_valid | self.valid)]
        return m
