"""A LeNet-style CNN on the bundled 8×8 digits: train with JAX, fold Conv+BN, deploy with onnxruntime.

Shows: ``Conv2d`` → ``BatchNorm2d`` → ReLU → ``MaxPool2d`` blocks, ``Dropout`` and a ``Linear`` head
declared as an ``nn.Module``; training with ``gf.Trainer`` (JAX/XLA + optax, BatchNorm running
statistics carried as ``update:`` outputs of the train graph); ``gf.optimize`` folding every eval-mode
batch norm into the convolution before it (fewer nodes, no ``batch_norm`` op left); ONNX export of the
optimised graph and onnxruntime predictions checked against JAX's.

Data, honestly: scikit-learn's ``load_digits`` — 1,797 8×8 grey-level digits (not MNIST), scaled to
[0, 1] and fed at their native 8×8 resolution as (N, 1, 8, 8). Two 2×2 poolings take 8×8 to 2×2, so
the network is LeNet's shape at a quarter of its size. Accuracy is on the shared held-out 20 % split
(360 images, see ``_data.py``). Full mode fails (exit 1) below 97 % test accuracy or on any
JAX/onnxruntime disagreement.

Run: ``python examples/cnn.py`` (about 13 s on a 2-core CPU), ``--quick`` for a smoke run (tests).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import graphforge as gf
from graphforge import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _data import digits  # noqa: E402  (the examples' shared data loader)
from _common import finish, fit_and_evaluate, onnx_agrees  # noqa: E402  (the examples' shared reporting)

__all__ = ["LeNet", "inputs", "make_model", "main"]


class LeNet(nn.Module):
    """(N, 1, 8, 8) → two conv/BN/ReLU/pool blocks → (N, 64·2·2) → dropout → 128 → 10 logits."""

    def __init__(self, dropout: float = 0.25):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding="same")
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding="same")
        self.bn2 = nn.BatchNorm2d(64)
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc1 = nn.Linear(64 * 2 * 2, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.pool(self.bn1(self.conv1(x)).relu())          # (N, 32, 4, 4)
        x = self.pool(self.bn2(self.conv2(x)).relu())          # (N, 64, 2, 2)
        x = self.dropout(self.flatten(x))
        return self.fc2(self.fc1(x).relu())


# The CLI's model-file convention (docs/cli.md): `graphforge compile examples/cnn.py -o model.onnx --verify`
# traces make_model() on these inputs.
inputs = gf.TensorSpec(("batch", 1, 8, 8), "float32", name="image")


def make_model() -> LeNet:
    return LeNet()


def main(argv=None) -> int:
    import optax

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two epochs, no accuracy target (for tests)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--out", default=None, help="directory for lenet.onnx (default: a temp dir)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()

    x_train, x_test, y_train, y_test = digits()
    x_train, x_test = x_train[:, None], x_test[:, None]        # NCHW: (n, 1, 8, 8)
    spec = inputs

    model = LeNet()
    epochs = args.epochs or (2 if args.quick else 30)
    steps_per_epoch = -(-len(x_train) // 64)
    schedule = optax.cosine_decay_schedule(3e-3, epochs * steps_per_epoch)
    trainer = gf.Trainer(model, nn.functional.cross_entropy, optax.adamw(schedule, weight_decay=1e-4),
                         inputs=[spec], targets=gf.TensorSpec(("batch",), "int64"),
                         metrics={"accuracy": nn.functional.accuracy}, seed=0, progress=False)
    print("train graph ops:", dict(sorted(trainer.train_graph.op_counts().items())))
    test = fit_and_evaluate(trainer, x_train, y_train, x_test, y_test, epochs)
    failed = []
    if not args.quick and test["accuracy"] < 0.97:
        failed.append(f"test accuracy {test['accuracy'] * 100:.2f} % is below 97 %")

    # Conv + BatchNorm folding: the eval-mode batch norms become part of the conv weights
    exported = trainer.export_graph()
    optimised = gf.optimize(exported)
    before, after = exported.op_counts(), optimised.op_counts()
    print(f"gf.optimize: {len(exported.nodes)} → {len(optimised.nodes)} nodes; "
          f"batch_norm {before.get('batch_norm', 0)} → {after.get('batch_norm', 0)}; ops {dict(sorted(after.items()))}")
    if after.get("batch_norm", 0) or len(optimised.nodes) >= len(exported.nodes):
        failed.append("Conv+BN was not folded by gf.optimize")
    jax_pred = trainer.predict(x_test)
    folded = gf.run(optimised, x_test, backend="jax")[0]
    print(f"folded vs unfolded graph (JAX): max |Δlogit| {np.max(np.abs(folded - jax_pred)):.2e}")
    if not np.allclose(folded, jax_pred, atol=1e-3, rtol=1e-3):
        failed.append("the folded graph computes different logits")

    # ONNX export of the optimised graph, run in onnxruntime
    path = os.path.join(args.out or tempfile.mkdtemp(prefix="gf_cnn_"), "lenet.onnx")
    gf.save_onnx(optimised, path)
    import onnx
    proto = onnx.load(path)
    onnx_ops = sorted({n.op_type for n in proto.graph.node})
    print(f"ONNX {path}: {len(proto.graph.node)} nodes {onnx_ops}, opset {proto.opset_import[0].version}")
    if "BatchNormalization" in onnx_ops:
        failed.append("the ONNX file still has a BatchNormalization node")
    if not onnx_agrees(gf.run(optimised, x_test, backend="onnxruntime")[0], jax_pred):
        failed.append("JAX and onnxruntime disagree")

    return finish(failed, t_start)


if __name__ == "__main__":
    sys.exit(main())
