"""The shared test helpers themselves: an output comparison must notice a dropped output."""
from __future__ import annotations

import numpy as np
import pytest

from gf_testutil import zip_outputs


def test_zip_outputs_pairs_equal_length_sequences():
    a, b = [np.zeros(2), np.ones(3)], (np.zeros(2), np.ones(3))
    pairs = zip_outputs(a, b, ["y", "z"])
    assert [len(p) for p in pairs] == [3, 3] and pairs[1][2] == "z"


@pytest.mark.parametrize("got, want", [([np.zeros(1)], [np.zeros(1), np.zeros(1)]), ([1, 2], [1]), ([], [0])])
def test_zip_outputs_fails_on_a_dropped_or_extra_output(got, want):
    with pytest.raises(AssertionError, match=rf"attention: output counts differ: got {len(got)}"):
        zip_outputs(got, want, what="attention")
