"""The 10-million-row shortcuts of load_results and to_grid give exactly what the slow calls they replace give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.grid import _sorted_levels
from analysis.load import _drop_unused, _first_appearance, _sort_rows


@pytest.mark.parametrize("values", [
    np.round(np.random.default_rng(0).choice([0.0, 0.05, 0.1, 0.6, np.nan], 5_000), 6),
    np.random.default_rng(1).integers(0, 1_000, 5_000),
    np.array([3.0]),
])
def test_sorted_levels_is_np_unique_with_inverse(values):
    levels, inverse = _sorted_levels(values)
    expected_levels, expected_inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(levels, expected_levels)
    np.testing.assert_array_equal(inverse, expected_inverse.ravel())


def test_sort_rows_is_a_stable_sort_values_and_keeps_sorted_frames_as_they_are():
    rng = np.random.default_rng(2)
    n = 4_000
    df = pd.DataFrame({
        "model": pd.Categorical(rng.choice(["b", "a", "c"], n), categories=["a", "b", "c"]),
        "noise": rng.choice([0.0, 0.2, 0.4], n),
        "frac": rng.choice([1.0, 0.5, 0.1], n),
        "seed": rng.integers(0, 50, n),
        "cls": pd.Categorical(rng.choice(["z", "y"], n), categories=["z", "y"], ordered=True),
        "row": np.arange(n),
    })
    keys, ascending = ["model", "noise", "frac", "seed", "cls"], [True, True, False, True, True]
    expected = df.sort_values(keys, ascending=ascending, kind="stable")
    got = _sort_rows(df, keys, ascending)
    pd.testing.assert_frame_equal(got, expected)
    assert _sort_rows(expected, keys, ascending) is expected  # in order already: no copy, no sort


def test_first_appearance_and_drop_unused_match_pandas():
    column = pd.Series(pd.Categorical(["frog", "cat", "frog", "ant"], categories=["ant", "bee", "cat", "frog"]))
    assert _first_appearance(column) == ["frog", "cat", "ant"]
    assert list(_drop_unused(column).cat.categories) == ["ant", "cat", "frog"]
    full = column.cat.remove_unused_categories()
    assert _drop_unused(full) is full
