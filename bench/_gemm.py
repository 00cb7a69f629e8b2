"""GEMM throughput of the three math libraries in play: `python -m bench._gemm` prints JSON.

The shape is MiniLM's feed-forward matmul for a padded batch of 32 corpus texts
([32 x 85 tokens, 384] x [384, 1536]), the op that dominates both models'
time: TensorFlow (Eigen/oneDNN, what the SavedModel runs), PyTorch `addmm`
(MKL, what the PyTorch baseline runs) and numpy (OpenBLAS), same thread count.
"""
from __future__ import annotations

import json
import time

from server._env import set_defaults as set_env_defaults

set_env_defaults()

M, K, N = 32 * 85, 384, 1536
REPEAT = 20


def _gflops(fn) -> float:
    fn()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(REPEAT):
            fn()
        best = min(best, (time.perf_counter() - t) / REPEAT)
    return 2.0 * M * K * N / best / 1e9


def main() -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K), dtype=np.float32)
    w = rng.standard_normal((K, N), dtype=np.float32)
    bias = rng.standard_normal((N,), dtype=np.float32)
    out = {"shape": [M, K, N], "numpy_openblas": _gflops(lambda: a @ w)}

    import torch

    ta, tw, tb = torch.from_numpy(a), torch.from_numpy(w.T.copy()), torch.from_numpy(bias)
    out["torch_addmm"] = _gflops(lambda: torch.addmm(tb, ta, tw.t()))
    out["torch_threads"] = torch.get_num_threads()

    import tensorflow as tf

    xa, xw, xb = tf.constant(a), tf.constant(w), tf.constant(bias)
    f = tf.function(lambda: tf.matmul(xa, xw) + xb, autograph=False)
    out["tensorflow_matmul"] = _gflops(lambda: f().numpy())
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}


if __name__ == "__main__":
    print(json.dumps(main()))
