"""examples/gan.py runs a few alternating steps: finite losses, a PNG grid, the generator in ONNX."""
from __future__ import annotations

import pytest

from example_helpers import load_example

pytest.importorskip("jax")
pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")


def test_gan_example_quick(capsys, tmp_path):
    assert load_example("gan").main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    png = tmp_path / "gan_samples.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "generator.onnx").exists()
    assert "JAX vs onnxruntime max" in out, out


def test_gan_updates_only_its_player():
    """The D step changes discriminator params only; the G step generator params only."""
    import jax.numpy as jnp
    import numpy as np
    import optax
    from graphforge.runtimes.jax import x64

    import graphforge as gf

    gan = load_example("gan")
    G, D = gan.Generator(), gan.Discriminator()
    z_spec = gf.TensorSpec((4, gan.LATENT), "float32", name="z")
    d_graph = gf.trace(gan.DiscriminatorLoss(G, D), gf.TensorSpec((4, 1, 8, 8), "float32", name="real"), z_spec)
    g_graph = gf.trace(gan.GeneratorLoss(G, D), z_spec)
    rng = np.random.default_rng(0)
    real = rng.uniform(0, 1, (4, 1, 8, 8)).astype(np.float32)
    z = rng.standard_normal((4, gan.LATENT)).astype(np.float32)
    with x64():
        params = {n: jnp.asarray(v) for n, v in d_graph.params.items()}
        for graph, player, inputs in ((d_graph, "discriminator", (real, z)), (g_graph, "generator", (z,))):
            step, names = gan.compile_step(graph, player, optax.sgd(0.1))
            assert names and all(n.startswith(player + ".") for n in names)
            new, _, loss = step(params, optax.sgd(0.1).init({n: params[n] for n in names}), *inputs)
            assert np.isfinite(float(loss))
            changed = {n for n in params if not np.array_equal(np.asarray(new[n]), np.asarray(params[n]))}
            assert changed and changed <= set(names), (player, sorted(changed))
