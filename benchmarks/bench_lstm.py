"""LSTM benchmarks (issue 16): train step, ONNX inference and in-graph generation.

* ``train``: one Adam step of a 2-layer ``nn.LSTM`` (input 64, hidden 256, seq 64, batch 32,
  loss mean(out²)) — graphforge-JAX (``gf.Trainer.train_step``, the layer on ``gf.scan``) vs the
  same model written by hand with ``jax.lax.scan`` + optax vs PyTorch eager ``nn.LSTM`` (same
  weights, same batch; the first step's losses are recorded). Target: graphforge ≤ 1.0× the faster
  of the two. ``--jax-hoisted`` adds a third JAX variant, "jax hoisted": the hand-written layer
  with a ``custom_vjp`` whose reverse scan carries only (dh, dc) and sums the weight gradients with
  one matmul after it (what graphforge's scan VJP does) — not a peer of the target, the ceiling probe.
* ``onnx``: inference latency in onnxruntime of graphforge's export vs ``torch.onnx.export`` of the
  same ``nn.LSTM`` (both ONNX's native ``LSTM`` op). Target ≤ 1.0×. Beside it, an A/A control: the
  graphforge file in a second session, timed in the same interleaving (``ratio_aa``: the run's noise
  floor for two files that run the same kernel).
* ``generate``: greedy tokens/s of a character LSTM language model (vocab 128, embedding 64,
  hidden 256, 2 layers): graphforge's whole ``generate(prompt)`` graph in one onnxruntime call (a
  ``Loop``) vs a Python loop calling an onnxruntime one-step graph once per token (both graphs
  ``gf.optimize``d; the state carried per layer; ``--ort-threads`` sets onnxruntime's intra-op
  threads). Target ≥ 2×. Also reports the ONNX node counts of the loop body and the step graph.

* ``onnx_cases``: graphforge's two ONNX forms of one layer per case (LSTM, GRU, RNN × batch, seq,
  hidden): the native ``LSTM``/``GRU``/``RNN`` op (the default export) vs the ``Scan``
  (``native_ops=False``) — the figures behind ``runtimes/onnx/recurrent.py: prefer_native``.
* ``generate_kv``: greedy tokens/s of a character Transformer LM (d_model 128, 4 heads, 2 layers —
  examples/char_lm.py's) generating in one onnxruntime call, with a key/value cache in the loop
  carry (one token per step) vs re-running the whole prefix every step.

    python benchmarks/bench_lstm.py [--part train,onnx,onnx_cases,generate,generate_kv] [--rounds 15] [--tiny]
        [--ort-threads N] [--jax-hoisted] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import add_common_args, hand_jax_step, interleaved_medians, ort_settle, write_results  # noqa: E402

__all__ = ["PARTS", "measure_train", "measure_onnx", "measure_onnx_cases", "measure_generate",
           "measure_generate_kv", "main"]

PARTS = ("train", "onnx", "onnx_cases", "generate", "generate_kv")
CASES = [(1, 16, 64), (8, 64, 128), (32, 64, 256), (32, 128, 64)]  # (batch, seq, hidden)
TINY_CASES = [(2, 4, 8)]
FULL = dict(features=64, hidden=256, layers=2, seq=64, batch=32, new_tokens=128)
TINY = dict(features=8, hidden=16, layers=2, seq=8, batch=4, new_tokens=8)


def _gf_lstm(sz):
    from graphforge import nn

    return nn.LSTM(sz["features"], sz["hidden"], num_layers=sz["layers"])


def _inputs(sz):
    return np.random.default_rng(0).standard_normal((sz["seq"], sz["batch"], sz["features"])).astype(np.float32)


class _Net:
    """The benchmarked module: LSTM output only (seq, batch, hidden)."""

    @staticmethod
    def make(sz):
        from graphforge import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = _gf_lstm(sz)

            def forward(self, x):
                return self.lstm(x)[0]
        return Net()


def _torch_lstm(sz, state: dict):
    import torch

    m = torch.nn.LSTM(sz["features"], sz["hidden"], num_layers=sz["layers"])
    m.load_state_dict({k.split(".", 1)[1]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    return m


def _jax_lstm_loss(layers: int):
    """mean(out²) of a PyTorch-layout LSTM written by hand with lax.scan."""
    import jax
    import jax.numpy as jnp

    def layer(x, w_ih, w_hh, b_ih, b_hh):
        xw = x @ w_ih.T + b_ih                                   # (seq, batch, 4H): one matmul
        h0 = jnp.zeros((x.shape[1], w_hh.shape[1]), x.dtype)

        def step(carry, xt):
            h, c = carry
            i, f, g, o = jnp.split(xt + h @ w_hh.T + b_hh, 4, -1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h
        return jax.lax.scan(step, (h0, h0), xw)[1]

    def loss(p, x):
        for k in range(layers):
            x = layer(x, *(p[f"lstm.{n}_l{k}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        return jnp.mean(x * x)
    return loss


def _jax_lstm_loss_hoisted(layers: int):
    """mean(out²) like :func:`_jax_lstm_loss`, but each layer's backward written by hand the way
    cuDNN/oneDNN (and graphforge's scan VJP) do it: the reverse ``lax.scan`` carries only (dh, dc)
    and stacks the per-step gate cotangents dG; ``dW_hh``, ``dW_ih`` and the biases are one matmul /
    one sum each after the loop (``jax.custom_vjp``)."""
    import jax
    import jax.numpy as jnp

    def fwd_scan(xw, w_hh_t, b_hh):
        h0 = jnp.zeros((xw.shape[1], w_hh_t.shape[0]), xw.dtype)

        def step(carry, xt):
            h, c = carry
            i, f, g, o = jnp.split(xt + h @ w_hh_t + b_hh, 4, -1)
            i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
            c2 = f * c + i * g
            tc = jnp.tanh(c2)
            h2 = o * tc
            return (h2, c2), (h2, h, c, i, f, g, o, tc)
        return jax.lax.scan(step, (h0, h0), xw)[1]

    @jax.custom_vjp
    def layer(x, w_ih, w_hh, b_ih, b_hh):
        return fwd_scan(x @ w_ih.T + b_ih, w_hh.T, b_hh)[0]

    def layer_fwd(x, w_ih, w_hh, b_ih, b_hh):
        res = fwd_scan(x @ w_ih.T + b_ih, w_hh.T, b_hh)
        return res[0], (x, w_ih, w_hh, res[1:])

    def layer_bwd(saved, dy):
        x, w_ih, w_hh, (hp, cp, i, f, g, o, tc) = saved

        def step(carry, t):
            dh, dc = carry
            dyt, cpt, it, ft, gt, ot, tct = t
            dh = dh + dyt
            do = dh * tct
            dc = dc + dh * ot * (1 - tct * tct)
            dgates = jnp.concatenate([dc * gt * it * (1 - it), dc * cpt * ft * (1 - ft),
                                      dc * it * (1 - gt * gt), do * ot * (1 - ot)], -1)
            return (dgates @ w_hh, dc * ft), dgates
        zero = jnp.zeros_like(dy[0])
        _, dG = jax.lax.scan(step, (zero, zero), (dy, cp, i, f, g, o, tc), reverse=True)
        flat = dG.reshape(-1, dG.shape[-1])
        db = flat.sum(0)
        return (dG @ w_ih, flat.T @ x.reshape(-1, x.shape[-1]), flat.T @ hp.reshape(-1, hp.shape[-1]), db, db)
    layer.defvjp(layer_fwd, layer_bwd)

    def loss(p, x):
        for k in range(layers):
            x = layer(x, *(p[f"lstm.{n}_l{k}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        return jnp.mean(x * x)
    return loss


def measure_train(sz, rounds: int, tiny: bool, torch: bool, hoisted: bool = False) -> dict:
    import jax.numpy as jnp
    import optax

    import graphforge as gf
    from graphforge.runtimes.jax import x64

    net = _Net.make(sz)
    state = net.state_dict()
    x = _inputs(sz)
    trainer = gf.Trainer(net, lambda out: gf.mean(out * out), optax.adam(1e-3),
                         inputs=[gf.TensorSpec(("seq", "batch", sz["features"]), "float32")], targets=[],
                         seed=0, progress=False)
    with x64():
        xd = jnp.asarray(x)
    steps = {"graphforge": lambda: trainer.train_step(xd, [])["loss"].block_until_ready()}

    opt = optax.adam(1e-3)
    steps["jax"] = hand_jax_step(_jax_lstm_loss(sz["layers"]), opt, state, xd)
    if hoisted:  # the same step with each layer's weight gradients summed after the reverse loop
        steps["jax hoisted"] = hand_jax_step(_jax_lstm_loss_hoisted(sz["layers"]), opt, state, xd)
    if torch:
        import torch as _torch
        tm = _torch_lstm(sz, state)
        topt = _torch.optim.Adam(tm.parameters(), lr=1e-3)
        xt = _torch.from_numpy(x)

        def one_torch():
            topt.zero_grad(set_to_none=True)
            out = tm(xt)[0]
            loss = (out * out).mean()
            loss.backward()
            topt.step()
            return loss.detach()
        steps["torch"] = one_torch
    first = {n: float(np.asarray(fn())) for n, fn in steps.items()}
    res = interleaved_medians(steps, rounds=rounds, warmup=1 if tiny else 3, min_chunk_s=0.002 if tiny else 0.05)
    # the target's peers: hand JAX as people write it and PyTorch eager ("jax hoisted" is the ceiling probe)
    best = min(res[n]["median_s"] for n in res if n in ("jax", "torch"))
    return {"part": "train", "sizes": sz, "first_loss": first, "results": res,
            "ratio_gf_jax": res["graphforge"]["median_s"] / res["jax"]["median_s"],
            "ratio_gf_torch": res["graphforge"]["median_s"] / res["torch"]["median_s"] if "torch" in res else None,
            "ratio_gf_best": res["graphforge"]["median_s"] / best,
            "ratio_gf_jax_hoisted": (res["graphforge"]["median_s"] / res["jax hoisted"]["median_s"]
                                     if "jax hoisted" in res else None)}


def measure_onnx(sz, rounds: int, tiny: bool, torch: bool) -> dict:
    import onnxruntime as ort

    import graphforge as gf

    net = _Net.make(sz)
    g = gf.trace(net, gf.TensorSpec(("seq", "batch", sz["features"]), "float32"), training=False)
    x = _inputs(sz)
    tmp = tempfile.mkdtemp(prefix="gf_bench_lstm_")
    gf_path = os.path.join(tmp, "gf_lstm.onnx")
    gf.save_onnx(g, gf_path)
    so = ort.SessionOptions()
    sessions = {"graphforge": ort.InferenceSession(gf_path, so, providers=["CPUExecutionProvider"])}
    info = {}
    if torch:
        import torch as _torch
        tm = _torch_lstm(sz, net.state_dict()).eval()
        t_path = os.path.join(tmp, "torch_lstm.onnx")
        try:
            _torch.onnx.export(tm, (_torch.from_numpy(x),), t_path, input_names=["x"], output_names=["out"],
                               dynamic_axes={"x": {0: "seq", 1: "batch"}}, dynamo=False)
            info["torch_exporter"] = "torchscript"
        except Exception as exc:  # noqa: BLE001 - a torch build without the TorchScript exporter: try dynamo
            info["torchscript_error"] = f"{type(exc).__name__}: {exc}"[:200]
            _torch.onnx.export(tm, (_torch.from_numpy(x),), t_path, input_names=["x"], output_names=["out"], dynamo=True)
            info["torch_exporter"] = "dynamo"
        sessions["torch.onnx"] = ort.InferenceSession(t_path, so, providers=["CPUExecutionProvider"])
    # an A/A control: graphforge's file in a second session, timed in the same interleaving — the
    # noise floor of a row that compares two files onnxruntime runs with the same kernel
    sessions["graphforge A/A"] = ort.InferenceSession(gf_path, so, providers=["CPUExecutionProvider"])
    outs = {n: s.run(None, {s.get_inputs()[0].name: x})[0] for n, s in sessions.items()}
    if "torch.onnx" in outs:
        info["max_abs_diff"] = float(np.max(np.abs(outs["graphforge"] - outs["torch.onnx"])))
    import onnx
    info["ops"] = {n: sorted({nd.op_type for nd in onnx.load(p).graph.node})
                   for n, p in (("graphforge", gf_path), ("torch.onnx", os.path.join(tmp, "torch_lstm.onnx")))
                   if os.path.exists(p)}
    calls = {n: (lambda s=s: s.run(None, {s.get_inputs()[0].name: x})) for n, s in sessions.items()}
    res = interleaved_medians(calls, rounds=rounds, warmup=1 if tiny else 3, min_chunk_s=0.002 if tiny else 0.05,
                              settle_s=ort_settle(tiny))
    return {"part": "onnx", "sizes": sz, **info, "results": res,
            "ratio_gf_torch": res["graphforge"]["median_s"] / res["torch.onnx"]["median_s"] if "torch.onnx" in res else None,
            "ratio_aa": res["graphforge"]["median_s"] / res["graphforge A/A"]["median_s"]}


def measure_onnx_cases(rounds: int, tiny: bool) -> dict:
    """Native recurrent op vs Scan in onnxruntime for one layer per (kind, batch, seq, hidden)."""
    import onnxruntime as ort

    import graphforge as gf
    from graphforge import nn

    rows = []
    for kind, cls in (("lstm", nn.LSTM), ("gru", nn.GRU), ("rnn", nn.RNN)):
        for batch, seq, hidden in (TINY_CASES if tiny else CASES):
            layer = cls(64 if not tiny else 8, hidden)
            g = gf.trace(lambda x: layer(x)[0], gf.TensorSpec(("seq", "batch", layer.input_size)), training=False)
            x = np.random.default_rng(0).standard_normal((seq, batch, layer.input_size)).astype(np.float32)
            sess = {}
            for name, native in (("native", None), ("scan", False)):
                proto = gf.to_onnx(g, native_ops=native)
                sess[name] = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
            outs = {n: s.run(None, {"x": x})[0] for n, s in sess.items()}
            res = interleaved_medians({n: (lambda s=s: s.run(None, {"x": x})) for n, s in sess.items()},
                                      rounds=rounds, warmup=1, min_chunk_s=0.002 if tiny else 0.02,
                                      settle_s=ort_settle(tiny))
            rows.append({"kind": kind, "batch": batch, "seq": seq, "hidden": hidden,
                         "native_ms": res["native"]["median_s"] * 1e3, "scan_ms": res["scan"]["median_s"] * 1e3,
                         "scan_over_native": res["scan"]["median_s"] / res["native"]["median_s"],
                         "max_abs_diff": float(np.max(np.abs(outs["native"] - outs["scan"])))})
    return {"part": "onnx_cases", "cases": rows,
            "native_faster_everywhere": all(r["scan_over_native"] > 1.0 for r in rows)}


def measure_generate_kv(rounds: int, tiny: bool) -> dict:
    """In-graph generation of a char Transformer LM in onnxruntime: KV cache vs full prefix re-runs."""
    import onnxruntime as ort

    import graphforge as gf
    from graphforge import nn

    d, heads, layers, n_new = (16, 2, 1, 8) if tiny else (128, 4, 2, 128)

    class LM(nn.Module):
        def __init__(self, kv_cache):
            super().__init__()
            self.kv_cache = kv_cache
            self.emb = nn.Embedding(128, d)
            self.pos = nn.PositionalEncoding(d)
            self.blocks = nn.TransformerEncoder(num_layers=layers, d_model=d, nhead=heads, dim_feedforward=4 * d,
                                                dropout=0.0, activation="gelu", norm_first=True)
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, 128)

        def forward(self, prompt):
            n = prompt.shape[1]
            if self.kv_cache:
                return nn.generate_cached(self.blocks, prompt, n_new, embed=lambda t, o: self.pos(self.emb(t), offset=o),
                                          head=lambda h: self.head(self.norm(h)))[0]
            buf = gf.concat([prompt, gf.zeros((prompt.shape[0], n_new), "int64")], 1)

            def step(tok, st):
                buf, pos = st
                buf = gf.where(gf.arange(buf.shape[1])[None, :] == pos, tok[:, None], buf)
                logits = self.head(self.norm(self.blocks(self.pos(self.emb(buf)), is_causal=True)))
                return gf.squeeze(gf.gather(logits, gf.reshape(pos, [1]), axis=1), [1]), (buf, pos + 1)
            logits = self.head(self.norm(self.blocks(self.pos(self.emb(prompt)), is_causal=True)))[:, n - 1]
            return nn.generate(step, logits, (buf, gf.dim_value(n)), n_new)[0]

    spec = gf.TensorSpec((1, "plen"), "int64")
    graphs = {"kv cache": gf.trace(LM(True), spec, training=False, seed=0),
              "no cache": gf.trace(LM(False), spec, training=False, seed=0)}
    sess = {n: ort.InferenceSession(gf.to_onnx(g).SerializeToString(), providers=["CPUExecutionProvider"])
            for n, g in graphs.items()}
    prompt = np.frombuffer(b"def __init__(self", np.uint8).astype(np.int64)[None]
    toks = {n: s.run(None, {"prompt": prompt})[0] for n, s in sess.items()}
    res = interleaved_medians({n: (lambda s=s: s.run(None, {"prompt": prompt})) for n, s in sess.items()},
                              rounds=rounds, warmup=1, min_chunk_s=0.002 if tiny else 0.05,
                              settle_s=ort_settle(tiny))
    tps = {k: n_new / v["median_s"] for k, v in res.items()}
    return {"part": "generate_kv", "d_model": d, "heads": heads, "layers": layers, "new_tokens": n_new,
            "same_tokens": bool(np.array_equal(toks["kv cache"], toks["no cache"])), "results": res,
            "tokens_per_s": tps, "speedup": tps["kv cache"] / tps["no cache"]}


def measure_generate(sz, rounds: int, tiny: bool, threads: int = 0) -> dict:
    """Greedy generation tokens/s in onnxruntime: the whole ``generate(prompt)`` graph in one call (a
    ``Loop``) vs a Python loop calling the one-step graph once per token (the same step function,
    the state fed back as numpy). Both graphs go through ``gf.optimize`` before export; the loop
    carries the LSTM state per layer (no per-step split/stack). ``threads``: onnxruntime's
    intra-op threads (0: its default)."""
    import onnx
    import onnxruntime as ort

    import graphforge as gf
    from graphforge import nn

    vocab, n_new, L, H = 128, sz["new_tokens"], sz["layers"], sz["hidden"]

    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab, 64 if not tiny else 8)
            self.lstm = nn.LSTM(64 if not tiny else 8, H, num_layers=L, batch_first=True)
            self.head = nn.Linear(H, vocab)

        def forward(self, prompt, mode="generate", state=None):
            if mode == "step":  # one token and the per-layer state lists in, logits and the state out
                y, state = self.lstm.step(self.emb(prompt), state)
                return self.head(y), state
            out, (h, c) = self.lstm(self.emb(prompt))
            logits = self.head(out[:, prompt.shape[1] - 1])
            layers = lambda s: [gf.squeeze(t, [0]) for t in gf.split(s, L, 0)]  # noqa: E731
            state = (layers(h), layers(c))
            if mode == "prefill":
                return (logits, *state[0], *state[1])
            return nn.generate(lambda tok, st: self.forward(tok, "step", st), logits, state, n_new)[0]

    model = CharLSTM()
    tmp = tempfile.mkdtemp(prefix="gf_bench_gen_")
    spec_p = gf.TensorSpec((1, "plen"), "int64")
    state_specs = [gf.TensorSpec((1, H))] * (2 * L)

    def one_step(t, *hc):  # called as the module (not .forward): the same parameter names as the loop's
        logits, (h, c) = model(t, "step", (list(hc[:L]), list(hc[L:])))
        return (logits, *h, *c)
    graphs = {
        "loop": gf.trace(lambda p: model(p), spec_p, training=False),
        "prefill": gf.trace(lambda p: model(p, "prefill"), spec_p, training=False),
        "step": gf.trace(one_step, gf.TensorSpec((1,), "int64"), *state_specs, training=False),
    }
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess, nodes = {}, {}
    for name, g in graphs.items():
        path = os.path.join(tmp, f"{name}.onnx")
        gf.save_onnx(gf.optimize(g), path)
        proto = onnx.load(path)
        loops = [n for n in proto.graph.node if n.op_type == "Loop"]
        nodes[name] = len(loops[0].attribute[0].g.node) if loops else len(proto.graph.node)
        sess[name] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    prompt = np.frombuffer(b"def __init__(self", np.uint8).astype(np.int64)[None]

    def in_graph():
        return sess["loop"].run(None, {sess["loop"].get_inputs()[0].name: prompt})[0]

    def python_loop():
        pre = sess["prefill"]
        logits, *state = pre.run(None, {pre.get_inputs()[0].name: prompt})
        st = sess["step"]
        names = [i.name for i in st.get_inputs()]
        out = []
        for _ in range(n_new):
            tok = logits.argmax(-1)
            out.append(int(tok[0]))
            logits, *state = st.run(None, dict(zip(names, (tok, *state))))
        return np.array(out)[None]

    a, b = in_graph(), python_loop()
    res = interleaved_medians({"in-graph Loop": in_graph, "python loop": python_loop}, rounds=rounds,
                              warmup=1, min_chunk_s=0.002 if tiny else 0.05,
                              settle_s=ort_settle(tiny, threads))
    tps = {k: n_new / v["median_s"] for k, v in res.items()}
    return {"part": "generate", "sizes": sz, "new_tokens": n_new, "ort_threads": threads,
            "onnx_nodes": {"loop body": nodes["loop"], "step graph": nodes["step"]},
            "same_tokens": bool(np.array_equal(a, b)), "results": res, "tokens_per_s": tps,
            "speedup": tps["in-graph Loop"] / tps["python loop"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when importable")
    parser.add_argument("--jax-hoisted", action="store_true", help="'train': also time hand JAX with the weight "
                        "gradients summed after the reverse loop (a custom_vjp; the ceiling of that rewrite)")
    parser.add_argument("--ort-threads", type=int, default=0, help="onnxruntime intra-op threads for "
                        "'generate' (0: onnxruntime's default)")
    add_common_args(parser)
    args = parser.parse_args(argv)
    from benchmarks.models import torch_available

    torch = not args.no_torch and torch_available()
    sz = TINY if args.tiny else FULL
    rounds = 3 if args.tiny else args.rounds
    rows = []
    for part in args.part.split(","):
        if part == "train":
            r = measure_train(sz, rounds, args.tiny, torch, args.jax_hoisted)
            res = r["results"]
            print("LSTM train step: " + ", ".join(f"{n} {v['median_s'] * 1e3:.2f} ms" for n, v in res.items())
                  + f"; graphforge / best other = {r['ratio_gf_best']:.3f}; first losses {r['first_loss']}", flush=True)
        elif part == "onnx":
            r = measure_onnx(sz, rounds, args.tiny, torch)
            res = r["results"]
            ratio = f"{r['ratio_gf_torch']:.3f}" if r["ratio_gf_torch"] else "-"
            print("LSTM ONNX inference (onnxruntime): " + ", ".join(f"{n} {v['median_s'] * 1e3:.2f} ms"
                                                                    for n, v in res.items())
                  + f"; graphforge / torch.onnx = {ratio} (the same file in two sessions, A/A: "
                  f"{r['ratio_aa']:.3f}); ops {r.get('ops')}", flush=True)
        elif part == "onnx_cases":
            r = measure_onnx_cases(min(rounds, 5), args.tiny)
            for c in r["cases"]:
                print(f"  {c['kind']} batch {c['batch']} seq {c['seq']} hidden {c['hidden']}: native "
                      f"{c['native_ms']:.3f} ms, Scan {c['scan_ms']:.3f} ms (Scan/native {c['scan_over_native']:.2f})",
                      flush=True)
        elif part == "generate_kv":
            r = measure_generate_kv(rounds, args.tiny)
            print("Transformer generation (onnxruntime, in-graph): " + ", ".join(
                f"{n} {v:.0f} tokens/s" for n, v in r["tokens_per_s"].items())
                + f"; KV-cache speed-up {r['speedup']:.2f}x; same tokens: {r['same_tokens']}", flush=True)
        elif part == "generate":
            r = measure_generate(sz, rounds, args.tiny, args.ort_threads)
            print(f"LSTM generation (onnxruntime, {args.ort_threads or 'default'} threads; ONNX nodes "
                  f"{r['onnx_nodes']}): " + ", ".join(f"{n} {v:.0f} tokens/s" for n, v in r["tokens_per_s"].items())
                  + f"; speed-up {r['speedup']:.2f}x; same tokens: {r['same_tokens']}", flush=True)
        else:
            parser.error(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
        rows.append(r)
    write_results(args.json, "lstm", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
