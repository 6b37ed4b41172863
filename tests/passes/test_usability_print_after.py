"""gf.optimize(print_after=...) naming a pass the pipeline does not run is an error, not silence."""
import pytest

import graphforge as gf
from graphforge import nn


def test_print_after_a_pass_outside_the_pipeline_is_a_pass_error():
    g = gf.trace(nn.Linear(4, 2), gf.TensorSpec(("batch", 4)))
    with pytest.raises(gf.PassError, match="not in the pipeline"):
        gf.optimize(g, "fold,cse", print_after="fuse")


def test_print_after_a_pass_inside_a_group_is_fine():
    g = gf.trace(nn.Linear(4, 2), gf.TensorSpec(("batch", 4)))
    seen = []
    gf.optimize(g, "(fold,cse)*,dce", print_after="cse", stream=seen.append)
    assert seen and "IR after cse" in seen[0]
