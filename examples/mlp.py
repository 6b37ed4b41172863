"""The 784 → 128 → ReLU → 10 classifier, end to end.

Declared in both styles (tch-rs builder and PyTorch/burn ``Module``), traced to the IR, printed,
summarised, run on the NumPy reference back end, trained with ``gf.Trainer`` (JAX/XLA + optax) on
scikit-learn's bundled ``load_digits``, exported to ONNX and run in onnxruntime, checking that the
JAX and onnxruntime predictions agree.

Data, honestly: ``load_digits`` holds 1,797 8×8 grey-level digits (values 0..16), not MNIST. To keep
the MNIST-shaped 784-input architecture we upsample each image ×3 by pixel repetition (8×8 → 24×24,
no new information invented) and pad 2 pixels of background on every side (→ 28×28, like MNIST's
centred digits), then scale to [0, 1]. The task is therefore "MNIST-sized input, digits-sized
information"; the accuracy quoted is on a held-out 20 % split.

Run: ``python examples/mlp.py`` (``make demo``), or ``--quick`` for a fast smoke run (tests).
Compile it: ``graphforge compile examples/mlp.py -o mlp.onnx --verify`` (the file follows the CLI's
model-file convention: ``make_model()`` and ``inputs``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import graphforge as gf
from graphforge import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _data import digits, mnist_sized  # noqa: E402  (the examples' shared data loader)
from _common import onnx_agrees  # noqa: E402  (the examples' shared reporting)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Linear(784, 128)
        self.layer2 = nn.Linear(128, 10)

    def forward(self, x):
        return self.layer2(self.layer1(x).relu())


# The model-file convention of the CLI (docs/cli.md): `graphforge compile examples/mlp.py -o mlp.onnx`
# traces make_model() on these inputs (`examples/mlp.py:MLP` picks the class directly).
inputs = gf.TensorSpec(("batch", 784), "float32")


def make_model() -> MLP:
    return MLP()


def load_data(seed: int = 0):
    x_train, x_test, y_train, y_test = digits(seed)                        # (n, 8, 8) in [0, 1]
    return (mnist_sized(x_train).reshape(-1, 784), mnist_sized(x_test).reshape(-1, 784), y_train, y_test)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs, no accuracy target (for tests)")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    import optax

    t_start = time.perf_counter()
    spec = gf.TensorSpec(("batch", 784), "float32")

    # 1. both declaration styles trace to the same architecture
    net = nn.seq().add(nn.Linear(784, 128)).add_fn(gf.relu).add(nn.Linear(128, 10))
    g_seq = gf.trace(net, spec, seed=0)
    model = MLP()
    g = gf.trace(model, spec, seed=0)
    print("== IR (Module style) ==")
    print(g)
    assert gf.parse(str(g)) is not None
    print("== summary ==")
    gf.summary(g)
    assert g_seq.op_counts() == g.op_counts(), (g_seq.op_counts(), g.op_counts())

    x_train, x_test, y_train, y_test = load_data()
    ref = gf.run(g, x_test[:4], backend="reference")[0]
    print(f"reference back end, untrained logits for 4 test images: shape {ref.shape}")

    # 2. train with JAX/XLA + optax
    epochs = args.epochs or (2 if args.quick else 15)
    trainer = gf.Trainer(model, loss_fn=nn.functional.cross_entropy, optimizer=optax.adam(2e-3),
                         inputs=[spec], targets=gf.TensorSpec(("batch",), "int64"),
                         metrics={"accuracy": nn.functional.accuracy}, seed=0, progress=not args.quick)
    t0 = time.perf_counter()
    history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=64, validation_data=(x_test, y_test),
                          verbose=not args.quick)
    t_train = time.perf_counter() - t0
    test = trainer.evaluate(x_test, y_test)
    print(f"trained {epochs} epochs ({trainer.step} steps) in {t_train:.2f} s: "
          f"test loss {test['loss']:.4f}, test accuracy {test['accuracy'] * 100:.2f} %")
    if not args.quick and test["accuracy"] < 0.95:
        print("FAILED: test accuracy below 95 %", file=sys.stderr)
        return 1

    # 3. export the trained eval-mode graph to ONNX and run it in onnxruntime
    exported = trainer.export_graph()
    t0 = time.perf_counter()
    jax_pred = trainer.predict(x_test)
    t_jax = time.perf_counter() - t0
    try:
        proto = gf.to_onnx(gf.optimize(exported))
    except (ImportError, AttributeError, gf.GraphforgeError) as exc:
        print(f"ONNX export unavailable in this build ({type(exc).__name__}: {exc}); skipping onnxruntime")
    else:
        print(f"ONNX model: {len(proto.graph.node)} nodes, opset {proto.opset_import[0].version}")
        t0 = time.perf_counter()
        ort_pred = gf.run(exported, x_test, backend="onnxruntime")[0]
        t_ort = time.perf_counter() - t0
        agreed = onnx_agrees(ort_pred, jax_pred)
        print(f"predict {len(x_test)} images: JAX {t_jax * 1e3:.1f} ms, onnxruntime {t_ort * 1e3:.1f} ms")
        if not agreed:
            print("FAILED: JAX and onnxruntime disagree", file=sys.stderr)
            return 1
    print(f"total wall time {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
