"""Shared pytest set-up."""

import os
import sys

import torch

# Small tensors everywhere: one intra-op thread per worker avoids oversubscribing the 2 cores
# that pytest-xdist already shares between its workers.
torch.set_num_threads(1)

# tests/naive.py (an independent loop-based simulator) is imported by several test modules.
sys.path.insert(0, os.path.dirname(__file__))
