"""A training process that checkpoints as fast as it can, for the SIGKILL test (killtest.py).

    python ckpt_child.py DIR

Resumes from the newest checkpoint in DIR when there is one (prints ``resumed STEP DIGEST``), then
loops: one training step, ``saving STEP DIGEST``, ``save_checkpoint``, ``saved STEP``; every other
save writes the same step twice (the replace-in-place path). DIGEST is a hash of the parameters,
so the parent can tell whether what it reads back equals what was being saved.
"""
from __future__ import annotations

import hashlib
import sys

import numpy as np

__all__ = ["digest", "main"]


def digest(params: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(params):
        a = np.ascontiguousarray(np.asarray(params[name]))
        h.update(name.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def main(directory: str) -> None:
    import optax

    import graphforge as gf
    from graphforge import nn
    from graphforge.train.checkpoint import latest_checkpoint

    # Wide enough that a checkpoint takes a while to write (more moments to be killed in).
    net = nn.seq().add(nn.Linear(64, 256)).add_fn(gf.relu).add(nn.Linear(256, 4))
    trainer = gf.Trainer(net, loss_fn=nn.functional.cross_entropy, optimizer=optax.adam(1e-3),
                         inputs=gf.TensorSpec(("batch", 64)), targets=gf.TensorSpec(("batch",), "int64"),
                         progress=False, keep_checkpoints=2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 64)).astype(np.float32)
    y = rng.integers(0, 4, 16).astype(np.int64)
    if latest_checkpoint(directory):
        trainer.load_checkpoint(directory)
        print(f"resumed {trainer.step} {digest(trainer.params)}", flush=True)
    else:
        print("fresh 0 -", flush=True)
    while True:
        trainer.train_step(x, y)
        for _ in range(1 + trainer.step % 2):
            print(f"saving {trainer.step} {digest(trainer.params)}", flush=True)
            trainer.save_checkpoint(directory)
            print(f"saved {trainer.step}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
