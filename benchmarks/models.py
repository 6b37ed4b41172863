"""The benchmark models, each written three times with the same parameter names and the same weights:
as a graphforge ``nn.Module``, as a hand-written JAX function of a params dict, and as a PyTorch
``nn.Module`` (only when torch is importable — it is the optional ``bench`` extra).

Parameter names are graphforge's (``layers.0.attn.q_proj.weight``) and use PyTorch's layouts
(Linear weight ``(out, in)``, Conv2d weight ``(out, in, kh, kw)``), so
``torch_model.load_state_dict(params)`` and ``jax_forward(params, x)`` take graphforge's traced
params unchanged and every contender computes the same function from the same numbers.

Models (``MODELS[name]``):
- ``mlp``: 784-128-10 MLP, ReLU, cross-entropy.
- ``lenet``: LeNet-5-style CNN on (N, 1, 28, 28): conv 6@5x5 (pad 2) → ReLU → maxpool 2 →
  conv 16@5x5 → ReLU → maxpool 2 → 400-120-84-10, cross-entropy.
- ``transformer``: encoder, 2 post-norm layers, d=128, 4 heads, FFN 512, ReLU, dropout 0, on
  (N, 64, 128); loss mean(out²).

``ModelSpec.scaled(**sizes)`` gives smaller variants (the smoke test runs them).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np

import graphforge as gf
from graphforge import nn

# PyTorch's OpenMP runtime busy-waits between parallel regions by default; on a shared 2-core box
# that made a 2-thread torch train step 6-10x slower than a 1-thread one whenever anything else ran
# (measured: transformer step 1.8 s vs 0.18 s). Passive waiting gives torch its real speed at its
# default thread count. It must be set before torch is first imported, hence here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["ModelSpec", "MODELS", "TINY", "torch_available", "gf_params", "jax_loss", "torch_loss"]


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ---- graphforge modules ---------------------------------------------------------------------------

class MLP(nn.Module):
    def __init__(self, d_in=784, hidden=128, d_out=10):
        super().__init__()
        self.layer1 = nn.Linear(d_in, hidden)
        self.layer2 = nn.Linear(hidden, d_out)

    def forward(self, x):
        return self.layer2(self.layer1(x).relu())


class LeNet(nn.Module):
    def __init__(self, size=28, c1=6, c2=16, f1=120, f2=84, d_out=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        side = (size // 2 - 4) // 2
        self.fc1 = nn.Linear(c2 * side * side, f1)
        self.fc2 = nn.Linear(f1, f2)
        self.fc3 = nn.Linear(f2, d_out)

    def forward(self, x):
        x = self.pool(self.conv1(x).relu())
        x = self.pool(self.conv2(x).relu())
        x = self.flatten(x)
        return self.fc3(self.fc2(self.fc1(x).relu()).relu())


def _gf_encoder(layers=2, d=128, heads=4, ffn=512, seq=64):
    return nn.TransformerEncoder(num_layers=layers, d_model=d, nhead=heads, dim_feedforward=ffn, dropout=0.0)


# ---- hand-written JAX ---------------------------------------------------------------------------

def _jax_dense(p, name, x):
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def jax_mlp(p, x, **_):
    import jax
    return _jax_dense(p, "layer2", jax.nn.relu(_jax_dense(p, "layer1", x)))


def jax_lenet(p, x, **_):
    import jax
    from jax import lax

    def conv(name, x, pad):
        y = lax.conv_general_dilated(x, p[name + ".weight"], (1, 1), [(pad, pad), (pad, pad)],
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return y + p[name + ".bias"][None, :, None, None]

    def pool(x):
        return lax.reduce_window(x, -np.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    x = pool(jax.nn.relu(conv("conv1", x, 2)))
    x = pool(jax.nn.relu(conv("conv2", x, 0)))
    x = x.reshape(x.shape[0], -1)
    x = jax.nn.relu(_jax_dense(p, "fc1", x))
    x = jax.nn.relu(_jax_dense(p, "fc2", x))
    return _jax_dense(p, "fc3", x)


def jax_encoder(p, x, layers=2, heads=4, **_):
    import jax

    def ln(x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) * jax.lax.rsqrt(var + 1e-5) * p[name + ".weight"] + p[name + ".bias"]

    b, s, d = x.shape
    for i in range(layers):
        pre = f"layers.{i}."

        def split(t):   # (B, S, D) -> (B, S, H, Dh): jax.nn.dot_product_attention's layout
            return t.reshape(b, s, heads, d // heads)
        q, k, v = (split(_jax_dense(p, pre + f"attn.{n}_proj", x)) for n in "qkv")
        a = jax.nn.dot_product_attention(q, k, v).reshape(b, s, d)
        x = ln(x + _jax_dense(p, pre + "attn.out_proj", a), pre + "norm1")
        h = _jax_dense(p, pre + "ffn.fc2", jax.nn.relu(_jax_dense(p, pre + "ffn.fc1", x)))
        x = ln(x + h, pre + "norm2")
    return x


# ---- PyTorch ------------------------------------------------------------------------------------

def _torch_modules():
    """The PyTorch classes (defined lazily: torch is optional)."""
    import torch
    from torch import nn as tnn
    from torch.nn import functional as F

    class TMLP(tnn.Module):
        def __init__(self, d_in=784, hidden=128, d_out=10):
            super().__init__()
            self.layer1, self.layer2 = tnn.Linear(d_in, hidden), tnn.Linear(hidden, d_out)

        def forward(self, x):
            return self.layer2(torch.relu(self.layer1(x)))

    class TLeNet(tnn.Module):
        def __init__(self, size=28, c1=6, c2=16, f1=120, f2=84, d_out=10):
            super().__init__()
            self.conv1, self.conv2 = tnn.Conv2d(1, c1, 5, padding=2), tnn.Conv2d(c1, c2, 5)
            side = (size // 2 - 4) // 2
            self.fc1, self.fc2, self.fc3 = tnn.Linear(c2 * side * side, f1), tnn.Linear(f1, f2), tnn.Linear(f2, d_out)

        def forward(self, x):
            x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
            x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
            x = torch.flatten(x, 1)
            return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    class TAttn(tnn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.heads = heads
            self.q_proj, self.k_proj, self.v_proj, self.out_proj = (tnn.Linear(d, d) for _ in range(4))

        def forward(self, x):
            b, s, d = x.shape

            def split(t):
                return t.reshape(b, s, self.heads, d // self.heads).transpose(1, 2)
            a = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)))
            return self.out_proj(a.transpose(1, 2).reshape(b, s, d))

    class TFFN(tnn.Module):
        def __init__(self, d, ffn):
            super().__init__()
            self.fc1, self.fc2 = tnn.Linear(d, ffn), tnn.Linear(ffn, d)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))

    class TLayer(tnn.Module):
        def __init__(self, d, heads, ffn):
            super().__init__()
            self.attn, self.ffn = TAttn(d, heads), TFFN(d, ffn)
            self.norm1, self.norm2 = tnn.LayerNorm(d), tnn.LayerNorm(d)

        def forward(self, x):
            x = self.norm1(x + self.attn(x))
            return self.norm2(x + self.ffn(x))

    class TEncoder(tnn.Module):
        def __init__(self, layers=2, d=128, heads=4, ffn=512, seq=64):
            super().__init__()
            self.layers = tnn.ModuleList([TLayer(d, heads, ffn) for _ in range(layers)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    return {"mlp": TMLP, "lenet": TLeNet, "transformer": TEncoder}


# ---- the shared description -----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One benchmark model: how to build it on each side, its input, target and loss."""
    name: str
    gf_factory: Callable
    jax_forward: Callable
    sizes: dict                      # constructor kwargs (the same on every side)
    input_shape: Callable            # sizes, batch -> input shape (batch first)
    loss: str                        # "cross_entropy" (int labels, 10 classes) or "mean_square"

    def scaled(self, **sizes) -> "ModelSpec":
        return dataclasses.replace(self, sizes={**self.sizes, **sizes})

    def gf_model(self):
        return self.gf_factory(**self.sizes)

    def torch_model(self):
        return _torch_modules()[self.name](**self.sizes)

    def spec(self) -> gf.TensorSpec:
        return gf.TensorSpec(("batch",) + tuple(self.input_shape(self.sizes, 1)[1:]), "float32")

    def inputs(self, batch: int, seed: int = 0):
        """(x, labels or None) as NumPy arrays."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.input_shape(self.sizes, batch)).astype(np.float32)
        y = rng.integers(0, self.sizes.get("d_out", 10), batch).astype(np.int64) if self.loss == "cross_entropy" else None
        return x, y

    def gf_loss(self):
        if self.loss == "cross_entropy":
            return nn.functional.cross_entropy
        return lambda out: (out * out).mean()


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec("mlp", MLP, jax_mlp, {"d_in": 784, "hidden": 128, "d_out": 10},
                     lambda s, b: (b, s["d_in"]), "cross_entropy"),
    "lenet": ModelSpec("lenet", LeNet, jax_lenet, {"size": 28, "c1": 6, "c2": 16, "f1": 120, "f2": 84, "d_out": 10},
                       lambda s, b: (b, 1, s["size"], s["size"]), "cross_entropy"),
    "transformer": ModelSpec("transformer", _gf_encoder, jax_encoder,
                             {"layers": 2, "d": 128, "heads": 4, "ffn": 512, "seq": 64},
                             lambda s, b: (b, s["seq"], s["d"]), "mean_square"),
}

# The smoke test's sizes: same structure, a fraction of the work.
TINY = {"mlp": {"d_in": 32, "hidden": 16}, "lenet": {"size": 12, "c1": 2, "c2": 3, "f1": 8, "f2": 8},
        "transformer": {"layers": 1, "d": 16, "heads": 2, "ffn": 32, "seq": 8}}


def gf_params(spec: ModelSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """The graphforge-initialised weights of ``spec`` (the other sides load these)."""
    g = gf.trace(spec.gf_model(), spec.spec(), seed=seed)
    return {k: np.asarray(v) for k, v in g.params.items() if k in set(g.trainable_names)}


def jax_loss(spec: ModelSpec):
    """``loss(params, x, y)`` in hand-written JAX + optax."""
    import optax

    def loss(p, x, y):
        out = spec.jax_forward(p, x, **spec.sizes)
        if spec.loss == "cross_entropy":
            return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()
        return (out * out).mean()
    return loss


def torch_loss(spec: ModelSpec):
    import torch
    from torch.nn import functional as F

    if spec.loss == "cross_entropy":
        return lambda out, y: F.cross_entropy(out, y)
    return lambda out, y: torch.mean(out * out)

