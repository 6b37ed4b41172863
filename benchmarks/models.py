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
- ``resnet8``: ResNet-8 for digit images (8x8 digits upsampled to (N, 1, 16, 16)): conv 16@3x3 →
  BN → ReLU → three basic blocks (16, 32 /2, 64 /2 channels; two conv3x3-BN per block, a 1x1 conv-BN
  shortcut where the shape changes) → global average pool → linear 10, cross-entropy. Convs have
  no bias (BN follows); BatchNorm runs in training mode (batch statistics, running stats updated).
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

__all__ = ["ModelSpec", "MODELS", "TINY", "torch_available", "gf_params", "gf_buffers", "jax_loss",
           "jax_loss_with_state", "torch_loss"]


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


def _widths(w):
    return (w, 2 * w, 4 * w)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut (1x1 conv-BN where shape changes), then ReLU."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            self.down_bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        h = self.bn1(self.conv1(x)).relu()
        h = self.bn2(self.conv2(h))
        return (h + (x if self.down is None else self.down_bn(self.down(x)))).relu()


class ResNet8(nn.Module):
    def __init__(self, size=16, width=16, d_out=10):
        super().__init__()
        w1, w2, w3 = _widths(width)
        self.stem = nn.Conv2d(1, w1, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(w1)
        self.block1, self.block2, self.block3 = BasicBlock(w1, w1, 1), BasicBlock(w1, w2, 2), BasicBlock(w2, w3, 2)
        self.pool = nn.GlobalAvgPool2d()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(w3, d_out)

    def forward(self, x):
        x = self.stem_bn(self.stem(x)).relu()
        x = self.block3(self.block2(self.block1(x)))
        return self.fc(self.flatten(self.pool(x)))


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


def _jax_bn(p, name, x, stats, training=True):
    """Training-mode BatchNorm (biased batch variance normalises); the new running stats (unbiased
    variance, momentum 0.1, as PyTorch) go into ``stats``. ``training=False``: eval mode, the
    running statistics in ``p`` normalise."""
    import jax
    if not training:
        inv = jax.lax.rsqrt(p[name + ".running_var"] + 1e-5) * p[name + ".weight"]
        return ((x - p[name + ".running_mean"][None, :, None, None]) * inv[None, :, None, None]
                + p[name + ".bias"][None, :, None, None])
    mean = x.mean((0, 2, 3))
    var = ((x - mean[None, :, None, None]) ** 2).mean((0, 2, 3))
    n = x.size // x.shape[1]
    if stats is not None:
        stats[name + ".running_mean"] = 0.9 * p[name + ".running_mean"] + 0.1 * jax.lax.stop_gradient(mean)
        stats[name + ".running_var"] = 0.9 * p[name + ".running_var"] + 0.1 * jax.lax.stop_gradient(var) * n / (n - 1)
    inv = jax.lax.rsqrt(var + 1e-5) * p[name + ".weight"]
    return (x - mean[None, :, None, None]) * inv[None, :, None, None] + p[name + ".bias"][None, :, None, None]


def jax_resnet8(p, x, stats=None, training=True, **_):
    import jax
    from jax import lax

    def conv(name, x, stride, pad):
        return lax.conv_general_dilated(x, p[name + ".weight"], (stride, stride), [(pad, pad), (pad, pad)],
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))

    def block(name, x, stride):
        h = jax.nn.relu(_jax_bn(p, name + ".bn1", conv(name + ".conv1", x, stride, 1), stats, training))
        h = _jax_bn(p, name + ".bn2", conv(name + ".conv2", h, 1, 1), stats, training)
        if name + ".down.weight" in p:
            x = _jax_bn(p, name + ".down_bn", conv(name + ".down", x, stride, 0), stats, training)
        return jax.nn.relu(h + x)

    x = jax.nn.relu(_jax_bn(p, "stem_bn", conv("stem", x, 1, 1), stats, training))
    x = block("block3", block("block2", block("block1", x, 1), 2), 2)
    return _jax_dense(p, "fc", x.mean((2, 3)))


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

    class TBlock(tnn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            self.bn1 = tnn.BatchNorm2d(c_out)
            self.conv2 = tnn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.bn2 = tnn.BatchNorm2d(c_out)
            self.down = None
            if stride != 1 or c_in != c_out:
                self.down = tnn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
                self.down_bn = tnn.BatchNorm2d(c_out)

        def forward(self, x):
            h = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(h + (x if self.down is None else self.down_bn(self.down(x))))

    class TResNet8(tnn.Module):
        def __init__(self, size=16, width=16, d_out=10):
            super().__init__()
            w1, w2, w3 = _widths(width)
            self.stem, self.stem_bn = tnn.Conv2d(1, w1, 3, padding=1, bias=False), tnn.BatchNorm2d(w1)
            self.block1, self.block2, self.block3 = TBlock(w1, w1, 1), TBlock(w1, w2, 2), TBlock(w2, w3, 2)
            self.fc = tnn.Linear(w3, d_out)

        def forward(self, x):
            x = torch.relu(self.stem_bn(self.stem(x)))
            x = self.block3(self.block2(self.block1(x)))
            return self.fc(x.mean((2, 3)))

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

    return {"mlp": TMLP, "lenet": TLeNet, "resnet8": TResNet8, "transformer": TEncoder}


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
    "resnet8": ModelSpec("resnet8", ResNet8, jax_resnet8, {"size": 16, "width": 16, "d_out": 10},
                         lambda s, b: (b, 1, s["size"], s["size"]), "cross_entropy"),
    "transformer": ModelSpec("transformer", _gf_encoder, jax_encoder,
                             {"layers": 2, "d": 128, "heads": 4, "ffn": 512, "seq": 64},
                             lambda s, b: (b, s["seq"], s["d"]), "mean_square"),
}

# The smoke test's sizes: same structure, a fraction of the work.
TINY = {"mlp": {"d_in": 32, "hidden": 16}, "lenet": {"size": 12, "c1": 2, "c2": 3, "f1": 8, "f2": 8},
        "resnet8": {"size": 8, "width": 2},
        "transformer": {"layers": 1, "d": 16, "heads": 2, "ffn": 32, "seq": 8}}


def gf_params(spec: ModelSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """The graphforge-initialised weights of ``spec`` (the other sides load these)."""
    g = gf.trace(spec.gf_model(), spec.spec(), seed=seed)
    return {k: np.asarray(v) for k, v in g.params.items() if k in set(g.trainable_names)}


def gf_buffers(spec: ModelSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """The model's buffers (BatchNorm running statistics) as graphforge initialises them."""
    g = gf.trace(spec.gf_model(), spec.spec(), seed=seed)
    return {k: np.asarray(g.params[k]) for k, v in g.param_values.items() if v.kind == "buffer"}


def jax_loss_with_state(spec: ModelSpec):
    """``loss(params, buffers, x, y) -> (loss, new_buffers)`` for models with BatchNorm (the hand
    JAX forward writes the new running statistics into a dict, as the other sides update theirs)."""
    import optax

    def loss(p, b, x, y):
        stats = {}
        out = spec.jax_forward({**p, **b}, x, stats=stats, **spec.sizes)
        if spec.loss == "cross_entropy":
            return optax.softmax_cross_entropy_with_integer_labels(out, y).mean(), stats
        return (out * out).mean(), stats
    return loss


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

