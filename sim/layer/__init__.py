"""cocotb bench of a layer core (``bench.py``)."""
