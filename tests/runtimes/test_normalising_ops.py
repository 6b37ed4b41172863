"""The normalising ops — softmax, log_softmax, cross_entropy (log_softmax + a pick), attention (a softmax
over scores) and layer_norm — on every back end, for inputs scaled up to 1e30 and with ±inf entries.
(batch_norm in eval mode is an affine map with stored statistics, not a normalisation of its input.)

Semantics (NumPy's and PyTorch's; the reference, JAX and onnxruntime agree):
- any finite row gives finite probabilities that sum to 1 and finite log-probabilities, however large the
  values, as long as the row's spread (max - min) is itself a float32 (beyond it the log-probability is
  -inf, the correctly rounded value; the probability is 0);
- a -inf entry (a masked class) gets probability 0 / log-probability -inf; the rest of the row is the
  softmax of the other entries;
- a row whose entries are all -inf is NaN (nothing to normalise; PyTorch's answer, and the attention
  contract's for a fully masked query row), and so is a row holding +inf (inf - inf) or NaN;
- cross_entropy: a -inf logit of another class leaves the loss finite, a -inf logit of the label gives
  +inf (as does any -inf logit under label smoothing, which puts mass on every class); NaN rows stay NaN;
- attention: a masked key gets weight exactly 0, so the output is a convex combination of the unmasked
  values.
- layer_norm is scale invariant while its variance is a float32 (|x| up to ~1e18); beyond, the variance
  overflows and the output is 0, never NaN.

Inputs go through a multiplication inside the graph (``x * s``, attention's own ``* scale`` with
1/sqrt(3)): that is the pattern XLA contracts into the max subtraction (issue 23).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("onnxruntime")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import graphforge as gf  # noqa: E402
from graphforge import nn  # noqa: E402

BACKENDS = ["reference", "jax", "onnxruntime"]
SCALES = [1.0, 1e5, 1e10, 1e20, 1e30]
ROWS, CLASSES = 4, 6
S_INV169 = np.float32(1 / 169)   # an inexact multiplier, as a mean over 13 x 13 pixels has
inf, nan = np.inf, np.nan

_settings = settings(max_examples=15, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@functools.cache
def _graph(kind: str, rows: int = ROWS, classes: int = CLASSES) -> gf.Graph:
    x, s = gf.TensorSpec((rows, classes), "float32"), gf.TensorSpec((), "float32")
    y = gf.TensorSpec((rows,), "int64")
    if kind == "softmax":
        return gf.trace(lambda x, s: gf.softmax(x * s, -1), x, s)
    if kind == "log_softmax":
        return gf.trace(lambda x, s: gf.log_softmax(x * s, -1), x, s)
    if kind == "cross_entropy":
        return gf.trace(lambda x, s, y: (nn.functional.cross_entropy(x * s, y, reduction="none"),
                                         nn.functional.cross_entropy(x * s, y)), x, s, y)
    if kind == "cross_entropy_smoothed":
        return gf.trace(lambda x, s, y: nn.functional.cross_entropy(x * s, y, "none", label_smoothing=0.1), x, s, y)
    raise ValueError(kind)


@functools.cache
def _attention_graph(masked: bool) -> gf.Graph:
    qkv = [gf.TensorSpec((1, 2, 3, 3), "float32") for _ in range(3)]   # D = 3: scale 1/sqrt(3) is inexact
    if masked:
        return gf.trace(lambda q, k, v, m: gf.attention(q, k, v, m), *qkv, gf.TensorSpec((1, 2, 3, 3), "bool"))
    return gf.trace(lambda q, k, v: gf.attention(q, k, v), *qkv)


def _run(graph, inputs, backend):
    with np.errstate(all="ignore"):   # the reference computes NaN rows with NumPy
        return gf.run(graph, inputs, backend=backend)


def _logits(seed: int, scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((ROWS, CLASSES)) * scale
    x[0] = x[0, 0]                                   # a row of equal logits (SqueezeNet's case)
    x[1, :3] = x[1, 3]                               # ties at a value that may be the maximum
    return (x / S_INV169).astype(np.float32)         # so x * s is about `scale`


# ---- finite inputs, scaled up to 1e30 -------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@_settings
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from(SCALES))
def test_softmax_and_log_softmax_are_finite_distributions(backend, seed, scale):
    x = _logits(seed, scale)
    p = _run(_graph("softmax"), [x, S_INV169], backend)[0].astype(np.float64)
    lp = _run(_graph("log_softmax"), [x, S_INV169], backend)[0].astype(np.float64)
    assert np.isfinite(p).all() and np.isfinite(lp).all(), (p, lp)
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
    assert (p.max(-1) >= 1 / CLASSES * (1 - 1e-6)).all()          # the largest logit gets at least 1/n
    np.testing.assert_allclose(p[0], 1 / CLASSES, rtol=1e-6)        # equal logits: uniform
    assert (lp <= 1e-6).all()
    np.testing.assert_allclose(np.log(np.exp(lp).sum(-1)), 0.0, atol=1e-5)
    if scale == 1.0:  # well conditioned: the back ends agree elementwise
        want = _run(_graph("softmax"), [x, S_INV169], "reference")[0]
        np.testing.assert_allclose(p, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
@_settings
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from(SCALES))
def test_cross_entropy_is_finite_and_non_negative(backend, seed, scale):
    x = _logits(seed, scale)
    y = np.random.default_rng(seed).integers(0, CLASSES, ROWS)
    per_row, mean = _run(_graph("cross_entropy"), [x, S_INV169, y], backend)
    assert np.isfinite(per_row).all() and np.isfinite(mean), (per_row, mean)
    assert (per_row >= -1e-6).all()
    np.testing.assert_allclose(per_row[0], math.log(CLASSES), rtol=1e-5)   # equal logits: log(n)
    np.testing.assert_allclose(mean, per_row.astype(np.float64).mean(), rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@_settings
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from(SCALES), v_scale=st.sampled_from([1.0, 1e30]),
       masked=st.booleans())
def test_attention_is_a_convex_combination_of_unmasked_values(backend, seed, scale, v_scale, masked):
    rng = np.random.default_rng(seed)
    q, k = (rng.standard_normal((2, 1, 2, 3, 3)) * math.sqrt(scale)).astype(np.float32)   # scores ~ scale
    k[..., :2, :] = k[..., 2:, :]      # equal keys: tied scores
    v = (rng.standard_normal((1, 2, 3, 3)) * v_scale).astype(np.float32)
    keep = np.ones((1, 2, 3, 3), bool)
    inputs = [q, k, v]
    if masked:
        keep = rng.random((1, 2, 3, 3)) < 0.6
        keep[..., 0] |= ~keep.any(-1)                       # every query keeps at least one key
        inputs.append(keep)
    out = _run(_attention_graph(masked), inputs, backend)[0].astype(np.float64)
    assert np.isfinite(out).all(), out
    # out[b, h, i, :] lies between the min and max of v over the keys query i may attend to
    vk = np.broadcast_to(v[:, :, None, :, :], (1, 2, 3, 3, 3)).astype(np.float64)  # (b, h, i, key, d)
    allowed = keep[..., None]
    lo = np.where(allowed, vk, np.inf).min(axis=3)
    hi = np.where(allowed, vk, -np.inf).max(axis=3)
    slack = 1e-5 * np.abs(v).max()
    assert (out >= lo - slack).all() and (out <= hi + slack).all(), (out, lo, hi)


# ---- ±inf entries: the semantics table ------------------------------------------------------------

TABLE = np.array([[-inf, 0, 0], [-inf, -inf, 5], [-inf, -inf, -inf], [inf, 0, 1], [nan, 0, 1],
                  [1e30, -1e30, 0], [3e38, -3e38, 0]], np.float32)
SOFTMAX = [[0, .5, .5], [0, 0, 1], [nan] * 3, [nan] * 3, [nan] * 3, [1, 0, 0], [1, 0, 0]]
LN2 = math.log(2)
LOG_SOFTMAX = [[-inf, -LN2, -LN2], [-inf, -inf, 0], [nan] * 3, [nan] * 3, [nan] * 3, [0, -2e30, -1e30],
               [0, -inf, -3e38]]   # the last row's spread (6e38) is beyond float32: -inf, correctly rounded


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_and_log_softmax_of_infinities(backend):
    one = np.float32(1)
    p = _run(_graph("softmax", 7, 3), [TABLE, one], backend)[0]
    lp = _run(_graph("log_softmax", 7, 3), [TABLE, one], backend)[0]
    np.testing.assert_allclose(p, SOFTMAX, rtol=1e-6, atol=0, equal_nan=True)
    np.testing.assert_allclose(lp, LOG_SOFTMAX, rtol=1e-6, atol=0, equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_of_infinities(backend):
    labels = np.array([1, 2, 0, 1, 1, 0, 1])
    one = np.float32(1)
    per_row = _run(_graph("cross_entropy", 7, 3), [TABLE, one, labels], backend)[0]
    np.testing.assert_allclose(per_row, [LN2, 0, nan, nan, nan, 0, inf], rtol=1e-6, atol=0, equal_nan=True)
    masked_label = _run(_graph("cross_entropy", 7, 3), [TABLE, one, np.zeros(7, np.int64)], backend)[0]
    assert masked_label[0] == inf and masked_label[1] == inf              # the label's logit is -inf
    smoothed = _run(_graph("cross_entropy_smoothed", 7, 3), [TABLE, one, labels], backend)[0]
    np.testing.assert_allclose(smoothed[[0, 1, 5]], [inf, inf, 0.1 * (2e30 + 1e30) / 3], rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_attention_masked_keys_get_zero_weight_and_a_fully_masked_row_is_nan(backend):
    q = np.ones((1, 2, 3, 3), np.float32)
    k = np.ones((1, 2, 3, 3), np.float32)
    v = np.stack([np.full(3, 1e30), np.full(3, -2.0), np.full(3, 4.0)]).astype(np.float32)[None, None]
    v = np.broadcast_to(v, (1, 2, 3, 3)).copy()
    keep = np.zeros((1, 2, 3, 3), bool)
    keep[..., 0, 1:] = True     # query 0: keys 1 and 2 (equal scores) -> the mean of their values
    keep[..., 1, 2] = True      # query 1: key 2 only
    #                             query 2: nothing -> NaN, as PyTorch
    out = _run(_attention_graph(True), [q, k, v, keep], backend)[0]
    np.testing.assert_allclose(out[..., 0, :], 1.0, rtol=1e-6)
    np.testing.assert_allclose(out[..., 1, :], 4.0, rtol=1e-6)
    assert np.isnan(out[..., 2, :]).all()


# ---- layer_norm: the other normalising op ---------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_norm_is_scale_invariant_until_its_variance_overflows(backend):
    """layer_norm(c * x) = layer_norm(x) while the variance (~c²) is a float32, i.e. up to c ≈ 1e18; beyond,
    the variance is +inf and rsqrt(inf) = 0 gives zeros: finite on every back end, never NaN."""
    g = gf.trace(lambda x, s: gf.layer_norm(x * s), gf.TensorSpec((ROWS, CLASSES), "float32"),
                 gf.TensorSpec((), "float32"))
    x = np.random.default_rng(3).standard_normal((ROWS, CLASSES)).astype(np.float32)
    want = _run(g, [x, np.float32(1)], "reference")[0]
    for scale in (1e5, 1e10, 1e18):
        np.testing.assert_allclose(_run(g, [x, np.float32(scale)], backend)[0], want, rtol=1e-4, atol=1e-5,
                                   err_msg=f"scale {scale:g}")
    for scale in (1e20, 1e30):
        np.testing.assert_array_equal(_run(g, [x, np.float32(scale)], backend)[0], 0)
