"""Draws docs/img/architecture.png (the README's architecture picture): `python docs/architecture.py`."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402


def box(ax, x, y, w, h, text, color):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="#333",
                                lw=1.2))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.5)


def arrow(ax, a, b, text=None, **kw):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, lw=1.2,
                                 color="#333", **kw))
    if text:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.12, text, ha="center", fontsize=7.5,
                color="#444")


def main():
    fig, ax = plt.subplots(figsize=(12, 6.2))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 6.2)
    ax.axis("off")
    g, h, f, s = "#dbeafe", "#dcfce7", "#fef3c7", "#fce7f3"
    # golden flow (top row)
    ax.text(0.2, 5.9, "golden/ (PyTorch)", fontsize=10, weight="bold", color="#1e40af")
    box(ax, 0.2, 4.8, 1.9, 0.8, "train\nMultiLevelIF\nsurrogate / STE", g)
    box(ax, 2.6, 4.8, 1.9, 0.8, "export\nBN fold, integer\nscaling", g)
    box(ax, 5.0, 4.8, 1.9, 0.8, "IR\nnetwork.json\n+ .npz", g)
    box(ax, 7.4, 4.8, 2.1, 0.8, "integer reference\nevents, potentials,\nevery counter", g)
    box(ax, 10.0, 4.8, 1.8, 0.8, "energy model\nLemaire,\nDampfhoffer", g)
    arrow(ax, (2.1, 5.2), (2.6, 5.2))
    arrow(ax, (4.5, 5.2), (5.0, 5.2))
    arrow(ax, (6.9, 5.2), (7.4, 5.2))
    arrow(ax, (9.5, 5.2), (10.0, 5.2), "exact")
    # hardware (middle)
    ax.text(0.2, 4.15, "hw/ (Amaranth 0.5): NetworkTop, one core per IR layer, FIFOs between",
            fontsize=10, weight="bold", color="#166534")
    box(ax, 0.2, 2.6, 1.6, 1.2, "input\nstreamer\npixels → events\n(i, x_i) + EOT", h)
    box(ax, 2.3, 2.6, 2.6, 1.2, "layer core (dense / conv2d)\naddress gen → W, P reads\n"
        "P += z·w (1 update/cycle,\nforwarding) → fire sweep", h)
    box(ax, 5.4, 2.6, 1.5, 1.2, "fork", h)
    box(ax, 7.3, 3.3, 1.9, 0.7, "conv cores\n(direct path)", h)
    box(ax, 7.3, 2.3, 1.9, 0.7, "shortcut\n(identity / 1×1 s2)", h)
    box(ax, 9.6, 2.6, 1.1, 1.2, "join\nbarrier\nor SEW", h)
    box(ax, 11.0, 2.6, 0.9, 1.2, "readout\nargmax", h)
    arrow(ax, (1.8, 3.2), (2.3, 3.2), "events")
    arrow(ax, (4.9, 3.2), (5.4, 3.2))
    arrow(ax, (6.9, 3.4), (7.3, 3.6))
    arrow(ax, (6.9, 3.0), (7.3, 2.7))
    arrow(ax, (9.2, 3.6), (9.6, 3.4))
    arrow(ax, (9.2, 2.7), (9.6, 2.9))
    arrow(ax, (10.7, 3.2), (11.0, 3.2))
    ax.text(6.0, 2.05, "every core: counted SRAM banks (W, B, P) + counters ev_in, ev_out, "
            "w_rd, p_rd, p_wr, b_rd, syn_updates, syn_acc, cycles", ha="center", fontsize=8,
            style="italic")
    # flows / sim (bottom)
    ax.text(0.2, 1.55, "sim/ + flows/", fontsize=10, weight="bold", color="#92400e")
    box(ax, 0.2, 0.3, 2.2, 1.0, "Amaranth simulator\n& cocotb on Icarus\nbit-exact vs reference", f)
    box(ax, 2.8, 0.3, 2.2, 1.0, "Verilog export\nyosys + nextpnr\nLUT/FF/BRAM/DSP, Fmax", f)
    box(ax, 5.4, 0.3, 2.2, 1.0, "board top\nUART protocol\niCEBreaker / ULX3S", f)
    box(ax, 8.0, 0.3, 3.8, 1.0, "mlsnn CLI: demo, train, export, golden, verilog,\nsimulate, "
        "synth, board, run, energy\n(measured counters vs analytic vs exact)", s)
    arrow(ax, (5.95, 4.8), (5.95, 4.45))
    ax.text(6.1, 4.55, "generates", fontsize=7.5, color="#444")
    out = os.path.join(os.path.dirname(__file__), "img", "architecture.png")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(out)


if __name__ == "__main__":
    main()
