"""A small DCGAN on the bundled 8×8 digits: two models, two optimizers, trained in alternation.

``graphforge.train.MultiTrainer`` holds both models and one task per player: each task's loss is
traced once (``gf.trace``), differentiated with respect to that player's parameters only
(``gf.grad(graph, wrt=[...])``) and compiled, with the player's own optax optimizer, into one
``jax.jit`` step; the loop alternates ``mt.step("discriminator", real, z)`` and
``mt.step("generator", z)``, and ``mt.write_back()`` puts the trained weights into ``G`` and ``D``
(``mt.save_checkpoint``/``load_checkpoint`` would cover both models and both optimizers). The generator (``Linear`` → two ``ConvTranspose2d`` upsamplings →
sigmoid) is then traced on its own, exported to ONNX and run in onnxruntime, agreeing with JAX.

Losses (non-saturating GAN, written with ``softplus``: ``softplus(-l)`` is the binary cross-entropy of
logit ``l`` against label 1, ``softplus(l)`` against label 0):
discriminator ``mean softplus(-D(x)) + mean softplus(D(G(z)))``, generator ``mean softplus(-D(G(z)))``.

Data, honestly: scikit-learn's ``load_digits`` (1,797 8×8 digits, values scaled to [0, 1]); the GAN
uses the 1,437 training images of the shared split. "Digit-like" is judged in pixel space by the
distance of each of 256 samples to its nearest real training digit: full mode fails (exit 1) unless
that mean distance is nearer the held-out real digits' (a real digit's distance to its nearest
training digit) than uniform noise's, and the nearest digits' labels cover at least 6 of the 10
classes — a crude but honest check that the generator neither emits noise nor collapses onto one
or two digits. It says nothing about quality beyond that, and this small, briefly trained GAN does
collapse partially: about 7 of the 10 digit classes show up (the minibatch-std feature of the
discriminator helps; more steps and a larger generator would help more). A PNG grid of samples is written (``--out``, default a temp dir).

Run: ``python examples/gan.py`` (about 16 s on a 2-core CPU), ``--quick`` for a smoke run (tests).
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
from _common import finish  # noqa: E402  (the examples' shared reporting)

__all__ = ["Generator", "Discriminator", "DiscriminatorLoss", "GeneratorLoss", "d_loss", "g_loss", "compile_step",
           "main"]

LATENT = 16


class Generator(nn.Module):
    """z (N, 16) → (N, 64, 2, 2) → ConvTranspose2d ×2 (stride 2) → (N, 1, 8, 8) in (0, 1)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(LATENT, 64 * 2 * 2)
        self.up1 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)   # 2×2 → 4×4
        self.up2 = nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1)    # 4×4 → 8×8

    def forward(self, z):
        h = self.fc(z).relu().reshape([z.shape[0], 64, 2, 2])
        return gf.sigmoid(self.up2(self.up1(h).relu()))


class Discriminator(nn.Module):
    """(N, 1, 8, 8) → two stride-2 convolutions with LeakyReLU → features (N, 256) plus their
    minibatch standard deviation → one real/fake logit (N, 1)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, stride=2, padding=1)            # 8×8 → 4×4
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)           # 4×4 → 2×2
        self.act = nn.LeakyReLU(0.2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64 * 2 * 2 + 1, 1)

    def forward(self, x):
        h = self.flatten(self.act(self.conv2(self.act(self.conv1(x)))))
        # minibatch std (Karras et al. 2018): how varied the batch is, as one more feature, so a
        # generator that collapses onto a few digits is easy to tell from real data
        spread = gf.sqrt(gf.var(h, axis=0) + 1e-8).mean()
        return self.fc(gf.concat([h, gf.broadcast_to(spread, [h.shape[0], 1])], axis=1))


class DiscriminatorLoss(nn.Module):
    """The discriminator's loss; holding both players names their params ``generator.*`` / ``discriminator.*``."""

    def __init__(self, generator, discriminator):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator

    def forward(self, real, z):
        fake = self.generator(z)
        return gf.softplus(-self.discriminator(real)).mean() + gf.softplus(self.discriminator(fake)).mean()


class GeneratorLoss(DiscriminatorLoss):
    def forward(self, z):
        return gf.softplus(-self.discriminator(self.generator(z))).mean()


def d_loss(models, real, z):
    """The discriminator's loss, with the models as attributes (``models.generator``)."""
    fake = models.generator(z)
    return gf.softplus(-models.discriminator(real)).mean() + gf.softplus(models.discriminator(fake)).mean()


def g_loss(models, z):
    """The generator's (non-saturating) loss."""
    return gf.softplus(-models.discriminator(models.generator(z))).mean()


def compile_step(loss_graph, player: str, optimizer):
    """The one step of ``player`` that ``MultiTrainer`` compiles, over a traced loss graph:
    ``step(params, opt_state, *inputs) -> (params, opt_state, loss)`` updating only ``<player>.*``."""
    from graphforge.train.multi import player_step

    names = [n for n in loss_graph.trainable_names if n.startswith(player + ".")]
    fn = player_step(loss_graph, names, optimizer, donate=False)
    return (lambda params, opt_state, *inputs: fn(params, opt_state, inputs)), names


def save_grid(images: np.ndarray, path: str, cols: int = 8) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols, rows), squeeze=False)
    for ax, i in zip(axes.flat, range(rows * cols)):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    fig.tight_layout()
    tmp = path + ".tmp"
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def main(argv=None) -> int:
    import optax
    from graphforge.train import MultiTrainer, Task

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few steps: finite losses and a PNG (for tests)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", default=None, help="directory for gan_samples.png and generator.onnx")
    args = ap.parse_args(argv)
    out_dir = args.out or tempfile.mkdtemp(prefix="gf_gan_")
    os.makedirs(out_dir, exist_ok=True)
    t_start = time.perf_counter()

    x_train, x_test, y_train, y_test = digits()
    real_images = x_train[:, None]                             # (1437, 1, 8, 8)
    batch = 64
    G, D = Generator(), Discriminator()
    real_spec = gf.TensorSpec((batch, 1, 8, 8), "float32", name="real")
    z_spec = gf.TensorSpec((batch, LATENT), "float32", name="z")
    mt = MultiTrainer({"generator": G, "discriminator": D}, {     # one optimizer per player
        "discriminator": Task(d_loss, [real_spec, z_spec], optax.adam(5e-4, b1=0.5)),
        "generator": Task(g_loss, [z_spec], optax.adam(1e-3, b1=0.5))}, seed=0)
    print("tasks: " + ", ".join(f"{t} trains {len(mt._names[t])} tensors" for t in mt.tasks))

    steps = args.steps or (5 if args.quick else 1000)
    rng = np.random.default_rng(0)
    d_losses, g_losses = [], []
    t0 = time.perf_counter()
    for step in range(steps):
        real = real_images[rng.integers(0, len(real_images), batch)]
        z = rng.standard_normal((batch, LATENT)).astype(np.float32)
        d_loss_value = mt.step("discriminator", real, z)                        # 1. the discriminator
        z = rng.standard_normal((batch, LATENT)).astype(np.float32)
        g_loss_value = mt.step("generator", z)                                  # 2. the generator
        if step % max(steps // 10, 1) == 0 or step == steps - 1:
            d_losses.append(float(d_loss_value))
            g_losses.append(float(g_loss_value))
            print(f"step {step:5d}: D loss {d_losses[-1]:.4f}, G loss {g_losses[-1]:.4f}")
    t_train = time.perf_counter() - t0
    mt.write_back()                                                             # trained weights -> G, D
    print(f"{steps} alternating steps in {t_train:.1f} s")
    failed = []
    if not np.all(np.isfinite(d_losses + g_losses)):
        failed.append("a loss is not finite")

    # the trained generator on its own: symbolic batch, trained params, JAX and onnxruntime
    gen = gf.trace(G, gf.TensorSpec(("batch", LATENT), "float32", name="z"), seed=0)
    z = np.random.default_rng(1).standard_normal((256, LATENT)).astype(np.float32)
    samples = gf.run(gen, z, backend="jax")[0]
    png = save_grid(samples[:64], os.path.join(out_dir, "gan_samples.png"))
    print(f"wrote {png} ({os.path.getsize(png):,} bytes)")

    # the judge: nearest real training image (pixel space), for samples and for two references
    flat = x_train.reshape(len(x_train), 64)

    def nearest(images):
        d2 = ((images.reshape(len(images), 1, 64) - flat[None]) ** 2).sum(-1)
        return float(np.sqrt(d2.min(1)).mean()), y_train[d2.argmin(1)]

    d_fake, fake_labels = nearest(samples)
    d_real, _ = nearest(x_test[:256])
    d_noise, _ = nearest(np.random.default_rng(2).uniform(0, 1, (256, 64)).astype(np.float32))
    classes = len(set(fake_labels.tolist()))
    print(f"mean distance to the nearest training digit: samples {d_fake:.2f}, held-out real digits {d_real:.2f}, "
          f"uniform noise {d_noise:.2f}; the samples' nearest digits cover {classes}/10 classes")
    if not args.quick and (d_fake > (d_real + d_noise) / 2 or classes < 6):
        failed.append("the generated samples are not closer to real digits than to noise, or lack variety")

    onnx_path = os.path.join(out_dir, "generator.onnx")
    gf.save_onnx(gf.optimize(gen), onnx_path)
    ort = gf.run(gen, z, backend="onnxruntime")[0]
    diff = float(np.max(np.abs(ort - samples)))
    print(f"generator ONNX {onnx_path}: JAX vs onnxruntime max |Δpixel| {diff:.2e}")
    if diff > 1e-4:
        failed.append("JAX and onnxruntime disagree on the generator")

    return finish(failed, t_start)


if __name__ == "__main__":
    sys.exit(main())
