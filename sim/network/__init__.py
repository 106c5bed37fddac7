"""cocotb bench of the network top (``bench.py``)."""
