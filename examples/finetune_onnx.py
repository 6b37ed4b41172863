"""Bring an ONNX classifier in, fine-tune its last layer with JAX, send it back out to onnxruntime.

1. Produce the "pretrained" ONNX file locally (no download): a 64 → 32 → ReLU → 10 MLP built with
   ``onnx.helper`` whose first layer is a fixed random feature map (``digits_mlp.onnx``).
2. ``gf.from_onnx`` validates and imports it; ``GraphModule`` turns the graph into an ``nn.Module``
   with only ``fc2.weight``/``fc2.bias`` trainable (fc1 frozen).
3. ``gf.Trainer`` (JAX/XLA + optax Adam) trains the last layer on scikit-learn's bundled
   ``load_digits`` (8×8 digits, 1,797 images; 20 % held out).
4. The fine-tuned weights go back out as ONNX: ``gf.save_onnx`` of the imported graph with the new
   params. The file is run in onnxruntime and its predictions checked against JAX's.

Run: ``python examples/finetune_onnx.py`` (``--quick`` for a fast smoke run, used by the tests).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import graphforge as gf
from graphforge import nn
from graphforge.runtimes.onnx_import import GraphModule


def make_pretrained(path: str, seed: int = 0) -> None:
    """Write the 'pretrained' classifier: random fc1 features, random fc2 head."""
    rng = np.random.default_rng(seed)
    f = np.float32
    inits = [numpy_helper.from_array((rng.normal(0, 1, (32, 64)) / 8).astype(f), "fc1.weight"),
             numpy_helper.from_array(np.zeros(32, f), "fc1.bias"),
             numpy_helper.from_array((rng.normal(0, 1, (10, 32)) / 6).astype(f), "fc2.weight"),
             numpy_helper.from_array(np.zeros(10, f), "fc2.bias")]
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["hr"], name="act"),
             helper.make_node("Gemm", ["hr", "fc2.weight", "fc2.bias"], ["logits"], name="fc2", transB=1)]
    graph = helper.make_graph(nodes, "digits_mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def load_data(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)


def main(argv=None) -> int:
    import optax
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few epochs (smoke run)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--out", default=None, help="directory for the .onnx files (default: a temp dir)")
    args = ap.parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 30)
    out_dir = args.out or tempfile.mkdtemp(prefix="gf_finetune_")
    os.makedirs(out_dir, exist_ok=True)
    src = os.path.join(out_dir, "digits_mlp.onnx")
    make_pretrained(src)

    graph = gf.from_onnx(src)
    print(f"imported {src}: {len(graph.nodes)} nodes, params {sorted(graph.params)}")
    model = GraphModule(graph, trainable=["fc2.weight", "fc2.bias"])
    xtr, xte, ytr, yte = load_data()

    trainer = gf.Trainer(model, nn.functional.cross_entropy, optax.adam(1e-2),
                         inputs=[gf.TensorSpec(("batch", 64), "float32", name="x")],
                         targets=[gf.TensorSpec(("batch",), "int64", name="y")],
                         metrics={"acc": nn.functional.accuracy}, progress=False)
    before = trainer.evaluate(xte, yte)
    trainer.fit(xtr, ytr, epochs=epochs, batch_size=64)
    after = trainer.evaluate(xte, yte)
    print(f"test accuracy: {before['acc']:.3f} before fine-tuning -> {after['acc']:.3f} after {epochs} epochs")

    tuned = trainer.params
    frozen_same = np.array_equal(tuned.get("fc1.weight", graph.params["fc1.weight"]), graph.params["fc1.weight"])
    new_params = {n: tuned.get(n, a) for n, a in graph.params.items()}
    dst = os.path.join(out_dir, "digits_mlp_finetuned.onnx")
    exported = graph.copy()
    exported.params.update({n: np.asarray(a, dtype=exported.params[n].dtype) for n, a in new_params.items()})
    gf.save_onnx(exported, dst)

    sess = ort.InferenceSession(dst, providers=["CPUExecutionProvider"])
    ort_logits = sess.run(None, {sess.get_inputs()[0].name: xte})[0]
    jax_logits = np.asarray(trainer.predict(xte))
    agree = float(np.mean(ort_logits.argmax(-1) == jax_logits.argmax(-1)))
    ort_acc = float(np.mean(ort_logits.argmax(-1) == yte))
    print(f"onnxruntime on {dst}: accuracy {ort_acc:.3f}, argmax agreement with JAX {agree:.3f}, "
          f"max |logit diff| {np.abs(ort_logits - jax_logits).max():.2e}; fc1 frozen: {frozen_same}")
    ok = agree == 1.0 and frozen_same and after["acc"] > before["acc"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
