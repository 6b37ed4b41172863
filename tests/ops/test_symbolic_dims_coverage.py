"""Issue #14's acceptance: every op whose output dims are computed from its input dims has an op-table
sample where such a dim is a symbolic *expression* (``seq-1``, ``floor((h+1)/2)``, ``2*seq``; in a
result, or in an operand the rule takes apart like split's ``seq+2``), so the type rule's formula is checked against the reference (and every back end) at a bound size.

Which ops compute dims is read off the samples themselves: an output dim that is neither an input dim
nor 1. Ops whose new dims come from attributes or data are listed with the reason; the list may only
shrink (an entry whose op gains an expression sample fails the test, so it is removed)."""
from __future__ import annotations

import re

import pytest

from graphforge.ops.registry import all_ops
from gf_testutil import build_sample_graph

_WORD = re.compile(r"^[A-Za-z_][\w.]*$")

# new dims from attributes or from the data, not from input dims
NOT_FROM_INPUT_DIMS = {
    "constant": "its value attribute",
    "arange": "start/stop/step attributes (symbolic stops are tested in tests/trace/test_symbolic_shapes.py)",
    "broadcast_to": "its shape attribute",
    "one_hot": "its depth attribute",
    "topk": "its k attribute",
    "nonzero": "the data: a fresh symbol bound by running",
    "compress": "the data: a fresh symbol bound by running",
    "unique": "the data: a fresh symbol bound by running",
    "non_max_suppression": "the data: a fresh symbol bound by running",
    "string_normalizer": "the data (stopwords dropped): a fresh symbol bound by running",
    "string_split": "the data (the most pieces): a fresh symbol bound by running",
    "affine_grid": "its size attribute",
    "col2im": "its image_shape and block_shape attributes",
    "roi_align": "its output_height/output_width attributes",
    "max_roi_pool": "its pooled_shape attribute",
}
# computes dims, but its spatial dims must still be static (the reason is in its type rule); none today
# (max_pool2d_indices computes its index table in the graph at symbolic sizes)
STATIC_ONLY: dict[str, str] = {}


def _expression(d) -> bool:
    return isinstance(d, str) and not _WORD.match(d)


def _survey(name, opdef):
    computes = expression = False
    for sample in opdef.samples:
        if sample.regions is not None:
            continue
        _, outs = build_sample_graph(name, sample)
        ins = [d for t in sample.inputs for d in t.shape]
        out_dims = [d for v in outs for d in v.type.shape]
        computes |= any(d not in ins and d != 1 for d in out_dims)
        expression |= any(_expression(d) for d in out_dims + ins)
    return computes, expression


@pytest.mark.parametrize("name", sorted(all_ops()))
def test_dim_computing_ops_have_an_expression_sample(name):
    computes, expression = _survey(name, all_ops()[name])
    if name in NOT_FROM_INPUT_DIMS or name in STATIC_ONLY:
        assert not expression, f"{name} now has an expression sample: drop it from the exemption list"
        return
    if computes:
        assert expression, (f"{name} computes output dims from its input dims but no sample makes one a "
                            "symbolic expression: add a sample with symbolic dims (and its bind)")


def test_the_exemptions_name_registered_ops():
    assert set(NOT_FROM_INPUT_DIMS) | set(STATIC_ONLY) <= set(all_ops())
