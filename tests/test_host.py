# amaranth: UnusedElaboratable=no
"""Host driver: protocol handling against scripted transports, the serial transport's errors,
and `mlsnn run` end to end over the simulated board."""

import json
import struct

import numpy as np
import pytest

import flows.host
from flows.cli import main
from flows.host import Board, BoardInfo, SerialTransport, SimTransport, Transport
from golden import fixtures, ir, reference
from golden.errors import MlsnnError
from hw.board import INFO_FORMAT, PROTOCOL_VERSION, BoardTop, info_bytes


def _net(seed=3):
    return fixtures.random_network(seed, kind="dense", timesteps=2, levels=2, in_shape=(6,),
                                   depth=1, max_neurons=5, in_bits=8)


class Scripted(Transport):
    """Answers each written command from a table ``{first byte: answer bytes}``."""

    def __init__(self, answers):
        self.answers = answers
        self.written = bytearray()
        self.pending = bytearray()
        self.breaks = 0

    def write(self, data):
        self.written += data
        self.pending += self.answers.get(data[0], b"")

    def read(self, n):
        if len(self.pending) < n:
            raise MlsnnError(f"timeout: expected {n} byte(s), got {len(self.pending)}")
        out = bytes(self.pending[:n])
        del self.pending[:n]
        return out

    def send_break(self):
        self.breaks += 1


def _info(net, **changes):
    fields = list(struct.unpack(INFO_FORMAT, info_bytes(net, clk_freq=12e6, potential_width=20)))
    names = ["magic", "version", "n_layers", "in_bits", "potential_width", "n_in", "n_classes",
             "timesteps", "counters_per_layer", "overflow_bytes", "clk_freq", "fingerprint"]
    for k, v in changes.items():
        fields[names.index(k)] = v
    return b"?" + struct.pack(INFO_FORMAT, *fields)


def test_info_is_decoded():
    net = _net()
    t = Scripted({ord("?"): _info(net)})
    board = Board(t)
    assert t.breaks == 1
    assert board.info == BoardInfo(PROTOCOL_VERSION, 2, 8, 20, 6, net.n_classes, 2, 10, 1,
                                   12_000_000, board.info.fingerprint)
    assert board.info.pixel_bytes == 1 and board.info.potential_bytes == 3
    board.check_network(net)


@pytest.mark.parametrize("answer,message", [
    (b"", "timeout"),
    (b"x", "no mlsnn board answers"),
])
def test_no_board(answer, message):
    with pytest.raises(MlsnnError, match=message):
        Board(Scripted({ord("?"): answer}))


def test_bad_magic_and_version():
    net = _net()
    with pytest.raises(MlsnnError, match="magic"):
        Board(Scripted({ord("?"): _info(net, magic=b"NOPE")}))
    with pytest.raises(MlsnnError, match="protocol version 9; this mlsnn speaks version 1"):
        Board(Scripted({ord("?"): _info(net, version=9)}))


def test_rejections_and_garbage():
    net = _net()
    t = Scripted({ord("?"): _info(net), ord("Z"): b"!Z", ord("O"): b"Q"})
    board = Board(t)
    with pytest.raises(MlsnnError, match="the board rejected command byte 0x5a"):
        board.clear()
    with pytest.raises(MlsnnError, match="expected the echo 'O' from the board, got 0x51"):
        board.overflow()


def test_readout_sign_extension():
    net = _net()
    # potential_width 20 -> 3 bytes per potential, two's complement within 20 bits.
    pots = [-1, 5, -(1 << 19), (1 << 19) - 1, 0][:net.n_classes]
    raw = b"".join((v & 0xFFFFF).to_bytes(3, "little") for v in pots)
    t = Scripted({ord("?"): _info(net), ord("R"): b"R" + struct.pack("<H", 1) + raw})
    pred, got = Board(t).readout()
    assert pred == 1 and got.tolist() == pots


def test_infer_sends_pixels():
    net = _net()
    t = Scripted({ord("?"): _info(net), ord("I"): b"I\x02\x00"})
    board = Board(t)
    assert board.infer(np.arange(6)) == 2
    assert t.written.endswith(b"I" + bytes(range(6)))


def test_serial_port_missing():
    with pytest.raises(MlsnnError, match="cannot open serial port /dev/ttyMLSNN0: no such "
                                         "device"):
        SerialTransport("/dev/ttyMLSNN0")


def test_run_cli_port_missing(tmp_path, capsys):
    net = _net()
    ir.save(net, tmp_path / "net")
    np.savez(tmp_path / "x.npz", x=fixtures.random_inputs(net, 2, seed=0))
    assert main(["run", "--port", "/dev/ttyMLSNN0", "--inputs", str(tmp_path / "x.npz"),
                 "--ir", str(tmp_path / "net")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlsnn run: error: cannot open serial port /dev/ttyMLSNN0")
    assert err.count("\n") == 1


def test_run_cli_bad_inputs(tmp_path, capsys):
    net = _net()
    ir.save(net, tmp_path / "net")
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 7), np.int64))
    assert main(["run", "--port", "/dev/ttyMLSNN0", "--inputs", str(tmp_path / "x.npz"),
                 "--ir", str(tmp_path / "net")]) == 1
    assert "inputs have shape (2, 7)" in capsys.readouterr().err


def test_run_cli_against_simulated_board(tmp_path, capsys, monkeypatch):
    """`mlsnn run` end to end, the serial port replaced by the board top in the simulator."""
    net = _net(seed=5)
    ir.save(net, tmp_path / "net")
    x = fixtures.random_inputs(net, 2, seed=2)
    np.savez(tmp_path / "x.npz", x=x)

    def fake_serial(port, *, baud, timeout):
        assert port == "/dev/ttyUSB1" and baud == 115200
        return SimTransport(BoardTop(net, clk_freq=12e6, divisor=4))

    monkeypatch.setattr(flows.host, "SerialTransport", fake_serial)
    assert main(["run", "--port", "/dev/ttyUSB1", "--inputs", str(tmp_path / "x.npz"),
                 "--ir", str(tmp_path / "net"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    gold = reference.run(net, x)
    assert doc["predictions"] == gold.predictions.tolist()
    assert doc["readout"] == gold.readout.tolist()
    assert doc["golden_match"] is True and doc["mismatches"] == []
    assert [l["name"] for l in doc["layers"]] == [l.name for l in net.layers]
    assert doc["layers"][0]["counters"]["syn_acc"] == int(
        gold.counters[net.layers[0].name]["syn_acc"].sum())
    # The text report too; and a board running another network is refused.
    assert main(["run", "--port", "/dev/ttyUSB1", "--inputs", str(tmp_path / "x.npz"),
                 "--ir", str(tmp_path / "net")]) == 0
    assert "golden model: match" in capsys.readouterr().out
    ir.save(_net(seed=6), tmp_path / "other")
    assert main(["run", "--port", "/dev/ttyUSB1", "--inputs", str(tmp_path / "x.npz"),
                 "--ir", str(tmp_path / "other")]) == 1
    assert "runs a different network" in capsys.readouterr().err
