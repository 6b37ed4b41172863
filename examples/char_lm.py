"""A character-level language model of Python source, trained and decoded in graphforge.

Shows: ``nn.LSTM`` (2 layers, on ``gf.scan``) and a small decoder-only Transformer
(``nn.TransformerEncoder`` layers with causal self-attention and ``nn.PositionalEncoding``) trained
with ``gf.Trainer`` on batches streamed from a uint8 memmap; validation bits per character; a loss
plot; and generation *inside the graph* (``nn.generate``: one ``gf.scan``; greedy, and sampled
with a temperature and top-k from a seed) that runs on JAX and exports to a single ONNX file, which
onnxruntime runs to the same tokens.

Data, honestly: the Python standard library's own source, which every machine with Python has
offline (``sysconfig.get_paths()["stdlib"]``). A fixed split by file: training on ``TRAIN_FILES``,
validation on ``VAL_FILES``. Bytes >= 128 become ``?`` (vocabulary 128). The text is tokenised
once into ``<out>/stdlib_{train,val}.u8`` (uint8 memmaps) and training batches are random windows
read from the memmap. Files differ a little between Python versions, so figures move a little too.

Run: ``python examples/char_lm.py`` (full mode: a few minutes on 2 cores), ``--quick`` for a smoke
run (tiny models, a few steps on 64 KiB of text; no quality target). Full-mode sizes (``FULL``; batches
of 32 windows of 64 characters, Adam with warm-up and cosine decay, gradients clipped at norm 1):

- LSTM: embedding 64, 2 layers of hidden 128, 1000 steps at learning rate 3e-3 (256k parameters);
- Transformer: d_model 128, 4 heads, 2 pre-norm layers (feed-forward 512, GELU), 1000 steps at 3e-3
  (430k parameters).

No dropout in full mode: 1000 steps of 32x64 characters are ~3.6 passes over the 0.56 M training
characters, too few to overfit, so a regulariser buys nothing and its random masks cost time. Hidden
128 rather than 256 for the LSTM: a step costs about a third (the recurrent matmuls shrink fourfold),
and within a few minutes more steps of the smaller model reach a lower loss (docs/sequence_models.md
has the measurements). ``--steps N`` trains both models N steps instead.

The run prints a unigram baseline for reference (each character predicted from its frequency in the
training text: ~4.3 bits/char on the validation windows). Full mode fails (exit 1) if a model's
validation bits per character is not below 3.0, or if onnxruntime's generated tokens differ from JAX's.

Run as a script it calls ``gf.retain_host_memory()`` first: XLA's train steps take 34-50 MiB of scratch
memory per run, above glibc's largest mmap threshold, so by default each step maps and faults in fresh
pages (about a fifth of the CPU time here); kept in the heap, the next step reuses them.
(``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` at start-up is another way: 370 -> 324 CPU-s measured.)
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import sysconfig
import tempfile
import time

import numpy as np

import graphforge as gf
from graphforge import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import finish  # noqa: E402  (the examples' shared reporting)

__all__ = ["TRAIN_FILES", "VAL_FILES", "VOCAB", "FULL", "QUICK", "tokenise", "windows", "unigram_bits", "LSTMLM",
           "TransformerLM", "generator", "encode", "decode", "main"]

TRAIN_FILES = ("argparse.py", "difflib.py", "inspect.py", "dataclasses.py", "enum.py", "typing.py")
VAL_FILES = ("pprint.py", "statistics.py")
VOCAB = 128

# Per model: constructor arguments, training steps and peak learning rate (see the docstring for why).
FULL = {
    "lstm": {"model": {"emb": 64, "hidden": 128, "layers": 2, "dropout": 0.0}, "steps": 1000, "lr": 3e-3},
    "transformer": {"model": {"d_model": 128, "heads": 4, "layers": 2, "dropout": 0.0}, "steps": 1000, "lr": 3e-3},
}
QUICK = {
    "lstm": {"model": {"emb": 16, "hidden": 32, "layers": 2}, "steps": 6, "lr": 3e-3},
    "transformer": {"model": {"d_model": 32, "heads": 2, "layers": 1}, "steps": 6, "lr": 1e-3},
}
BATCH, SEQ = 32, 64            # full mode; --quick uses 8 x 32


def encode(text: str | bytes) -> np.ndarray:
    """Bytes as tokens: ASCII codes, anything >= 128 mapped to ``?``."""
    data = np.frombuffer(text.encode() if isinstance(text, str) else text, np.uint8).copy()
    data[data >= VOCAB] = ord("?")
    return data


def decode(tokens) -> str:
    return bytes(int(t) for t in np.asarray(tokens).ravel()).decode("ascii", "replace")


def tokenise(out_dir: str, files, name: str, limit: int | None = None) -> np.ndarray:
    """The stdlib ``files`` concatenated and encoded into ``<out_dir>/stdlib_<name>.u8`` (written
    once, a read-only uint8 memmap afterwards)."""
    path = os.path.join(out_dir, f"stdlib_{name}.u8")
    if not os.path.exists(path):
        root = sysconfig.get_paths()["stdlib"]
        parts = []
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                parts.append(encode(fh.read()))
        data = np.concatenate(parts)[:limit]
        mm = np.memmap(path + ".tmp", np.uint8, "w+", shape=data.shape)
        mm[:] = data
        mm.flush()
        del mm
        os.replace(path + ".tmp", path)
    return np.memmap(path, np.uint8, "r")


def windows(data: np.ndarray, batch: int, seq: int, seed: int):
    """Endless ``(x, y)`` batches of random windows: ``y`` is ``x`` shifted by one character."""
    rng = np.random.default_rng(seed)
    while True:
        starts = rng.integers(0, len(data) - seq - 1, size=batch)
        chunk = np.stack([np.asarray(data[s:s + seq + 1]) for s in starts]).astype(np.int64)
        yield chunk[:, :-1], chunk[:, 1:]


def unigram_bits(train_data: np.ndarray, y_val: np.ndarray) -> float:
    """Bits per character of the unigram baseline on the validation targets: each character predicted
    from its frequency in the training text (add-one smoothed, so an unseen byte costs finite bits)."""
    counts = np.bincount(np.asarray(train_data), minlength=VOCAB).astype(np.float64) + 1.0
    return float(-np.log2(counts[np.asarray(y_val)] / counts.sum()).mean())


def fixed_windows(data: np.ndarray, seq: int, limit: int):
    """Non-overlapping validation windows (at most ``limit``) as ``(x, y)`` arrays."""
    n = min((len(data) - 1) // seq, limit)
    chunk = np.asarray(data[: n * seq + 1]).astype(np.int64)
    x = chunk[:-1].reshape(n, seq)
    y = chunk[1:].reshape(n, seq)
    return x, y


class LSTMLM(nn.Module):
    """Embedding → ``nn.LSTM`` (batch_first) → Linear over the vocabulary."""

    def __init__(self, emb: int = 64, hidden: int = 256, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=layers, batch_first=True, dropout=dropout)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, tokens):
        out, _ = self.lstm(self.emb(tokens))
        return self.head(out)

    def prefill(self, prompt):
        """Logits after the prompt and the LSTM state ``(h, c)``, each a list of per-layer (batch,
        hidden) tensors: the decoding loop carries them as they are (no split/stack per token)."""
        out, (h, c) = self.lstm(self.emb(prompt))
        per_layer = lambda s: [gf.squeeze(t, [0]) for t in gf.split(s, self.lstm.num_layers, 0)]  # noqa: E731
        return self.head(out[:, prompt.shape[1] - 1]), (per_layer(h), per_layer(c))

    def step(self, token, state):
        y, state = self.lstm.step(self.emb(token), state)
        return self.head(y), state


class TransformerLM(nn.Module):
    """Embedding + sinusoidal positions → causal pre-norm Transformer layers → LayerNorm →
    Linear. Decoding carries each layer's key/value cache through the loop and runs one token per
    step (``kv_cache=True``, default), or keeps a token buffer and re-reads the whole prefix each step."""

    def __init__(self, d_model: int = 128, heads: int = 4, layers: int = 2, dropout: float = 0.1,
                 kv_cache: bool = True):
        super().__init__()
        self.kv_cache = kv_cache
        self.emb = nn.Embedding(VOCAB, d_model)
        self.pos = nn.PositionalEncoding(d_model)  # N(0, 1) embeddings: positions of the same scale
        self.blocks = nn.TransformerEncoder(num_layers=layers, d_model=d_model, nhead=heads,
                                            dim_feedforward=4 * d_model, dropout=dropout, activation="gelu",
                                            norm_first=True)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, VOCAB)

    def forward(self, tokens):
        h = self.blocks(self.pos(self.emb(tokens)), is_causal=True)
        return self.head(self.norm(h))

    def generate_cached(self, prompt, max_new_tokens: int, **sampling):
        """KV-cached decoding (``nn.generate_cached``): the prompt runs once, then one position per step."""
        return nn.generate_cached(self.blocks, prompt, max_new_tokens,
                                  embed=lambda t, offset: self.pos(self.emb(t), offset=offset),
                                  head=lambda h: self.head(self.norm(h)), **sampling)

    def prefill(self, prompt, max_new_tokens: int):
        """Without a KV cache: the logits after the prompt and the decoding state ``(buffer,
        position)`` (the prompt followed by room for the new tokens, and the index the next token goes to)."""
        n = prompt.shape[1]
        buf = gf.concat([prompt, gf.zeros((prompt.shape[0], max_new_tokens), "int64")], 1)
        logits = self(prompt)[:, n - 1]
        return logits, (buf, gf.dim_value(n))

    def step(self, token, state):
        buf, pos = state
        width = buf.shape[1]
        buf = gf.where(gf.arange(width)[None, :] == pos, token[:, None], buf)
        # causal attention: positions after ``pos`` do not change the logits at ``pos``
        logits = self(buf)
        at = gf.squeeze(gf.gather(logits, gf.reshape(pos, [1]), axis=1), [1])
        return at, (buf, pos + 1)


def generator(model, max_new_tokens: int, eos_id: int | None = None, temperature: float = 0.0,
              top_k: int | None = None):
    """A function of ``prompt`` (batch, plen) int64 → (tokens (batch, max_new_tokens), count) that
    decodes inside the graph (for ``gf.trace``): greedy, or sampled with ``temperature``/``top_k``
    (the graph then takes the seed as its ``rng`` input)."""
    def generate(prompt):
        if isinstance(model, TransformerLM) and model.kv_cache:
            return model.generate_cached(prompt, max_new_tokens, eos_id=eos_id, temperature=temperature, top_k=top_k)
        if isinstance(model, TransformerLM):
            logits, state = model.prefill(prompt, max_new_tokens)
        else:
            logits, state = model.prefill(prompt)
        return nn.generate(model.step, logits, state, max_new_tokens, eos_id=eos_id, temperature=temperature,
                           top_k=top_k)
    return generate


def _loss(logits, y):
    return nn.functional.cross_entropy(gf.reshape(logits, [-1, VOCAB]), gf.reshape(y, [-1]))


def train(name, model, train_data, x_val, y_val, steps: int, batch: int, seq: int, lr: float, seed: int):
    import optax

    spec = gf.TensorSpec(("batch", "seq"), "int64", name="tokens")
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(steps // 20, 1), steps)
    trainer = gf.Trainer(model, _loss, optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule)),
                         inputs=[spec], targets=gf.TensorSpec(("batch", "seq"), "int64"), seed=seed, progress=False)
    epochs = 4 if steps >= 40 else 1
    t0 = time.perf_counter()
    trainer.fit(windows(train_data, batch, seq, seed), epochs=epochs, steps_per_epoch=max(steps // epochs, 1),
                validation_data=(x_val, y_val))
    dt = time.perf_counter() - t0
    bpc = trainer.history["val_loss"][-1] / math.log(2)
    print(f"{name}: {model.num_parameters():,} params, {trainer.step} steps of {batch}x{seq} in {dt:.1f} s; "
          f"validation {bpc:.3f} bits/char")
    return trainer, bpc


def _sizes(table) -> str:
    """The ``--help`` summary of a size table: one line per model."""
    return "\n".join(f"  {name}: {', '.join(f'{k} {v}' for k, v in cfg['model'].items())}; {cfg['steps']} steps at "
                     f"learning rate {cfg['lr']:g}" for name, cfg in table.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"full mode (batches of {BATCH} windows of {SEQ} characters; a few minutes on 2 cores):\n"
               f"{_sizes(FULL)}\n--quick (batches of 8 x 32, 64 KiB of text; seconds):\n{_sizes(QUICK)}")
    ap.add_argument("--quick", action="store_true", help="tiny models, a few steps (for tests)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per model (default: the table below)")
    ap.add_argument("--out", default=None, help="directory for data, plots and ONNX files (default: a temp dir)")
    ap.add_argument("--models", default="lstm,transformer")
    args = ap.parse_args(argv)
    names = args.models.split(",")
    if any(n not in FULL for n in names):
        ap.error(f"--models {args.models!r}: choose from {', '.join(FULL)} (comma-separated)")
    t_start, cpu_start = time.perf_counter(), time.process_time()
    out = args.out or tempfile.mkdtemp(prefix="gf_char_lm_")
    os.makedirs(out, exist_ok=True)
    quick = args.quick
    table = QUICK if quick else FULL
    limit = 1 << 16 if quick else None
    train_data = tokenise(out, TRAIN_FILES, "train" + ("_quick" if quick else ""), limit)
    val_data = tokenise(out, VAL_FILES, "val" + ("_quick" if quick else ""), limit)
    batch, seq = (8, 32) if quick else (BATCH, SEQ)
    x_val, y_val = fixed_windows(val_data, seq, 16 if quick else 256)
    print(f"data: {len(train_data):,} training characters ({', '.join(TRAIN_FILES)}), {len(val_data):,} validation "
          f"({', '.join(VAL_FILES)}) from {sysconfig.get_paths()['stdlib']}; {time.perf_counter() - t_start:.1f} s")
    print(f"unigram baseline (character frequencies of the training text): {unigram_bits(train_data, y_val):.3f} "
          f"bits/char on the {y_val.size:,} validation characters")
    failed = []
    prompt_text = "def __init__(self"
    prompt = encode(prompt_text)[None].astype(np.int64)
    n_new = 16 if quick else 120
    makers = {"lstm": LSTMLM, "transformer": TransformerLM}
    for name in names:
        cfg = table[name]
        model = makers[name](**cfg["model"])
        t0 = time.perf_counter()
        trainer, bpc = train(name, model, train_data, x_val, y_val, args.steps or cfg["steps"], batch, seq,
                             cfg["lr"], seed=0)
        times = {"train (incl. compile and validation)": time.perf_counter() - t0}
        gf.plot_history(trainer.history, os.path.join(out, f"{name}_loss.png"))
        if not quick and bpc >= 3.0:
            failed.append(f"{name}: validation {bpc:.3f} bits/char is not below 3.0")
        model.eval()  # no dropout while decoding
        t0 = time.perf_counter()
        g = gf.trace(generator(model, n_new), gf.TensorSpec((1, "plen"), "int64", name="prompt"), training=False)
        tokens_jax, count = gf.run(g, [prompt], backend="jax")
        times["greedy JAX (incl. trace, compile)"] = t_jax = time.perf_counter() - t0
        path = os.path.join(out, f"{name}_generate.onnx")
        t0 = time.perf_counter()
        gf.save_onnx(g, path)
        times["export"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        tokens_ort, _ = gf.run(g, [prompt], backend="onnxruntime")
        times["greedy onnxruntime (incl. session)"] = t_ort = time.perf_counter() - t0
        same = np.array_equal(tokens_jax, tokens_ort)
        print(f"{name} sample ({int(count)} tokens, JAX {t_jax:.2f} s incl. compile, onnxruntime {t_ort:.2f} s): "
              f"{prompt_text + decode(tokens_jax[0])!r}")
        print(f"{name}: generator exported to {path} ({os.path.getsize(path):,} bytes); onnxruntime tokens "
              f"{'equal' if same else 'DIFFER from'} JAX's")
        if not same:
            failed.append(f"{name}: onnxruntime's generated tokens differ from JAX's")
        # sampled: the same seed gives the same text on both back ends
        t0 = time.perf_counter()
        gs = gf.trace(generator(model, n_new, temperature=0.8, top_k=20),
                      gf.TensorSpec((1, "plen"), "int64", name="prompt"), training=False)
        feeds = {"prompt": prompt, "rng": np.uint32(1234)}
        sampled_jax = gf.run(gs, feeds, backend="jax")[0]
        sampled_ort = gf.run(gs, feeds, backend="onnxruntime")[0]
        times["sampled, both back ends"] = time.perf_counter() - t0
        same = np.array_equal(sampled_jax, sampled_ort)
        print(f"{name} sampled (temperature 0.8, top-k 20, seed 1234): {prompt_text + decode(sampled_jax[0])!r}; "
              f"onnxruntime tokens {'equal' if same else 'DIFFER from'} JAX's")
        if not same:
            failed.append(f"{name}: onnxruntime's sampled tokens differ from JAX's for the same seed")
        print(f"{name} times: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    # CPU seconds next to the wall time: on a shared machine the wall time grows with the load
    print(f"process CPU time {time.process_time() - cpu_start:.1f} s; load average {os.getloadavg()[0]:.1f}")
    return finish(failed, t_start)


if __name__ == "__main__":
    # The train steps' XLA scratch (34-50 MiB) is above glibc's largest mmap threshold: keep it in the
    # heap instead of faulting fresh pages in every step (a script's choice: it is process-wide, so
    # main() itself, which the tests call in-process, leaves the allocator alone).
    gf.retain_host_memory()
    sys.exit(main())
