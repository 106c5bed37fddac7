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
from hw.board import INFO_FORMAT, INFO_SIZE, INFO_V1_FORMAT, PROTOCOL_VERSION, BoardTop, info_bytes


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


_FIELDS = ["magic", "version", "n_layers", "in_bits", "potential_width", "n_in", "n_classes",
           "timesteps", "counters_per_layer", "overflow_bytes", "clk_freq", "fingerprint",
           "load_words", "addr_bytes", "data_bytes"]


def _info(net, weights="rom", mask=None, **changes):
    d = info_bytes(net, clk_freq=12e6, potential_width=20, weights=weights)
    fields = list(struct.unpack(INFO_FORMAT, d[:INFO_SIZE]))
    for k, v in changes.items():
        fields[_FIELDS.index(k)] = v
    if fields[1] == 1:
        return b"?" + struct.pack(INFO_V1_FORMAT, *fields[:12])
    return b"?" + struct.pack(INFO_FORMAT, *fields) + (d[INFO_SIZE:] if mask is None else mask)


def test_info_is_decoded():
    net = _net()
    t = Scripted({ord("?"): _info(net)})
    board = Board(t)
    assert t.breaks == 1
    assert board.info == BoardInfo(PROTOCOL_VERSION, 2, 8, 20, 6, net.n_classes, 2, 14, 1,
                                   12_000_000, board.info.fingerprint, 0, 0, 0, ())
    assert not t.pending and board.weights_loaded
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
    with pytest.raises(MlsnnError, match="protocol version 9; this mlsnn speaks versions 1 "
                                         "and 2"):
        Board(Scripted({ord("?"): _info(net, version=9)}))
    with pytest.raises(MlsnnError, match="^protocol error: the board's descriptor is "
                                         "inconsistent .0 SPRAM words"):
        Board(Scripted({ord("?"): _info(net, mask=b"\x01")}))


def test_version_1_descriptor():
    # A board built before the W command: 26 bytes, no SPRAM, inferences allowed at once.
    net = _net()
    t = Scripted({ord("?"): _info(net, version=1), ord("I"): b"I\x01\x00"})
    board = Board(t)
    assert board.info.version == 1 and not t.pending
    assert board.info.load_words == 0 and board.info.spram_layers == ()
    assert board.weights_loaded and board.infer(np.arange(6)) == 1


class Echoing(Scripted):
    """Scripted, and one ``W`` echo per W frame of ``frame`` bytes (the driver sends many at a
    time)."""

    def __init__(self, answers, frame):
        super().__init__(answers)
        self.frame = frame

    def write(self, data):
        if data[0] == ord("W"):
            assert len(data) % self.frame == 0
            self.written += data
            self.pending += b"W" * (len(data) // self.frame)
        else:
            super().write(data)


def test_spram_descriptor_and_load_bytes():
    from hw.network import weight_load_words
    net = _net()
    fc0 = {net.layers[0].name: "spram"}
    words = weight_load_words(net, fc0)
    t = Echoing({ord("?"): _info(net, fc0), ord("I"): b"I\x00\x00"}, frame=6)
    board = Board(t)
    assert board.info.load_words == len(words) and board.info.addr_bytes == 2
    assert board.info.data_bytes == 2 and board.info.spram_layers == (0,)
    assert board.info.needs_weights and not board.weights_loaded
    with pytest.raises(MlsnnError, match="were not loaded: Board.load_weights"):
        board.infer(np.arange(6))
    assert not t.written.endswith(b"I" + bytes(range(6)))
    start = len(t.written)
    board.load_weights(net)
    assert bytes(t.written[start:]) == b"".join(
        b"W" + struct.pack("<BHH", k, a, d) for k, a, d in words)
    assert board.weights_loaded and board.infer(np.arange(6)) == 0
    with pytest.raises(MlsnnError, match="does not fit the board's 2-byte addresses"):
        board.load_weights([(0, 1 << 16, 0)] + words[1:])
    assert not Board(t, weights_loaded=False).weights_loaded
    assert Board(t, weights_loaded=True).weights_loaded


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


def test_run_cli_spram_board(tmp_path, capsys, monkeypatch):
    """A board with fc0 in SPRAM: `mlsnn run --ir` loads the weights and matches the golden
    model; without --ir it stops with one line before any inference."""
    net = _net(seed=5)
    ir.save(net, tmp_path / "net")
    x = fixtures.random_inputs(net, 2, seed=2)
    np.savez(tmp_path / "x.npz", x=x)
    fc0 = {net.layers[0].name: "spram"}
    monkeypatch.setattr(flows.host, "SerialTransport", lambda port, *, baud, timeout:
                        SimTransport(BoardTop(net, clk_freq=12e6, divisor=4, weights=fc0)))
    assert main(["run", "--port", "/dev/ttyUSB1", "--inputs", str(tmp_path / "x.npz"),
                 "--json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlsnn run: error: the board has weights in SPRAM (")
    assert "give --ir" in err and err.count("\n") == 1
    assert main(["run", "--port", "/dev/ttyUSB1", "--inputs", str(tmp_path / "x.npz"),
                 "--ir", str(tmp_path / "net"), "--json"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["golden_match"] is True
    assert doc["predictions"] == reference.run(net, x).predictions.tolist()
    assert "[run] SPRAM weights: " in out.err
