"""longseq for PyTorch: long-sequence attention and recurrent ops with fused CPU kernels, every
registry mixer as a torch.nn.Module, and whole models that read and write the checkpoints of the
`longseq` command-line tool.

    import torch, longseq
    out = longseq.ops.exact_attention(q, k, v, causal=True)       # [B, H, T, D]
    layer = longseq.nn.Performer(dim=256, heads=4, features=128)  # [B, T, C] -> [B, T, C]
    model, config = longseq.load_checkpoint("runs/mqar")           # a `longseq train` checkpoint

The operators live in liblongseq_torch.so beside this file (TORCH_LIBRARY(longseq), loaded with
torch.ops.load_library); this package adds only wrappers, docstrings and module bookkeeping.
"""

import os as _os

import torch as _torch

_LIBRARY = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "liblongseq_torch.so")
if not _os.path.exists(_LIBRARY):
    raise ImportError(
        "longseq: the operator library %s is missing; build it (cmake --build build) and import "
        "from <build>/python, or install it (cmake --install build --component python)" % _LIBRARY
    )
_torch.ops.load_library(_LIBRARY)

from . import nn, ops  # noqa: E402  (the library must be loaded first)
from .nn import Model, load_checkpoint, load_safetensors  # noqa: E402

__all__ = ["ops", "nn", "Model", "load_checkpoint", "load_safetensors"]
