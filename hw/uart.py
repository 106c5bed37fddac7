"""A small 8N1 UART: a transmitter and a receiver with mid-bit sampling and break detection.

Both sides run at ``divisor`` clock cycles per bit (``round(clk_freq / baud)``; 104 for
115200 baud at 12 MHz, 217 at 25 MHz), so any clock works; simulations use a small divisor.
Bytes move over ``lib.stream`` interfaces of 8-bit payloads, least significant bit first on the
wire, one start bit, one stop bit, no parity.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTTx", "UARTRx", "divisor_for"]

MIN_DIVISOR = 4


def divisor_for(clk_freq, baud):
    """Clock cycles per bit for ``baud`` at ``clk_freq`` (Hz).

    Raises
    ------
    ValueError
        If the frequencies are not positive, the divisor would be below 4 (too few samples per
        bit), or the rounding error exceeds 2 % (a UART tolerates about 4 % over a frame).
    """
    if not isinstance(clk_freq, (int, float)) or clk_freq <= 0:
        raise ValueError(f"clk_freq must be a positive frequency in Hz, not {clk_freq!r}")
    if not isinstance(baud, (int, float)) or baud <= 0:
        raise ValueError(f"baud must be a positive rate in bit/s, not {baud!r}")
    div = round(clk_freq / baud)
    if div < MIN_DIVISOR:
        raise ValueError(f"baud {baud} is too fast for a {clk_freq / 1e6:g} MHz clock: it needs "
                         f"at least {MIN_DIVISOR} clock cycles per bit")
    err = abs(clk_freq / div - baud) / baud
    if err > 0.02:
        raise ValueError(f"baud {baud} at {clk_freq / 1e6:g} MHz has a {100 * err:.1f} % rate "
                         f"error (more than 2 %)")
    return div


def _check_divisor(divisor):
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ValueError(f"divisor must be an integer >= {MIN_DIVISOR} (clock cycles per bit), "
                         f"not {divisor!r}")
    return divisor


class UARTTx(wiring.Component):
    """UART transmitter (8N1).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send. ``ready`` is high while the line is idle.
    tx : Out(1)
        The serial line (idles high).

    Timing: a byte accepted at cycle c drives its start bit from c+1; the stop bit ends at
    c + 10·divisor, when ``ready`` rises again (back-to-back bytes leave no idle gap).
    """

    def __init__(self, *, divisor):
        self._divisor = _check_divisor(divisor)
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        timer = Signal(range(div))
        bits = Signal(range(10))
        shreg = Signal(9)          # data bits then the stop bit, shifted out LSB first

        m.d.comb += self.i.ready.eq((bits == 0) & (timer == 0))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                self.tx.eq(0),
                shreg.eq(Cat(self.i.payload, 1)),
                bits.eq(9),
                timer.eq(div - 1),
            ]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(bits != 0):
            m.d.sync += [
                self.tx.eq(shreg[0]),
                shreg.eq(shreg >> 1),
                bits.eq(bits - 1),
                timer.eq(div - 1),
            ]
        return m


class UARTRx(wiring.Component):
    """UART receiver (8N1) with a two-flop synchronizer and mid-bit sampling.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Members
    -------
    rx : In(1)
        The serial line (asynchronous; idles high).
    o : Out(stream.Signature(8))
        Received bytes. A byte stays valid until taken; a byte that completes while the previous
        one is still waiting replaces it and raises ``overrun``.
    frame_error : Out(1)
        One-cycle pulse when a stop bit reads 0 (the byte is dropped).
    overrun : Out(1)
        Sticky: a received byte was lost because ``o`` was not taken in time.
    brk : Out(1)
        High while the line has been low for at least two frames (20 bit times): a break.

    Timing: ``o.valid`` rises at the middle of the stop bit, i.e. about 9.5 bit times plus two
    synchronizer cycles after the falling edge of the start bit.
    """

    def __init__(self, *, divisor):
        self._divisor = _check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "frame_error": Out(1),
            "overrun": Out(1),
            "brk": Out(1),
        })

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(div))
        bits = Signal(range(8))
        shreg = Signal(8)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    # The edge lies within the last cycle: the middle of the start bit is about
                    # half a bit time ahead.
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    m.next = "IDLE"                    # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(div - 1), bits.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), timer.eq(div - 1),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.frame_error.eq(1)
                    m.next = "WAIT_HIGH"
            with m.State("WAIT_HIGH"):
                # After a framing error (or during a break) wait for the line to return high
                # before looking for the next start bit.
                with m.If(rx):
                    m.next = "IDLE"

        # Break detector: count consecutive low samples up to two frames.
        limit = 20 * div
        low = Signal(range(limit + 1))
        with m.If(rx):
            m.d.sync += low.eq(0)
        with m.Elif(low != limit):
            m.d.sync += low.eq(low + 1)
        m.d.comb += self.brk.eq(low == limit)
        return m
