"""Heatmaps cannot mislead: true class along the bottom, predicted class up the left, each count in its cell."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import figures

CLASSES = ("ant", "bee", "cat", "dog")


@pytest.fixture
def drawn():
    """A heatmap of a matrix with one unmistakable cell: 97 ants predicted as cat."""
    matrix = np.arange(16, dtype=float).reshape(4, 4)  # matrix[true, pred]
    matrix[0, 2] = 97
    fig = figures.heatmap(matrix, CLASSES, "test")
    fig.canvas.draw()
    yield fig, fig.axes[0], matrix
    figures.plt.close(fig)


def _tick_centres(axis, renderer) -> dict[str, np.ndarray]:
    """Display position of each tick label's tick, by label text."""
    out = {}
    for tick, label in zip(axis.get_major_ticks(), axis.get_ticklabels()):
        out[label.get_text()] = np.asarray(tick.tick1line.get_window_extent(renderer).get_points()).mean(axis=0)
    return out


def test_true_class_runs_along_the_bottom_and_predicted_up_the_left(drawn):
    fig, ax, _ = drawn
    assert ax.get_xlabel() == "true class" and ax.get_ylabel() == "predicted class"
    assert ax.xaxis.get_label_position() == "bottom" and ax.xaxis.get_ticks_position() == "bottom"
    assert ax.yaxis.get_label_position() == "left"
    renderer = fig.canvas.get_renderer()
    x_label = ax.xaxis.label.get_window_extent(renderer)
    y_label = ax.yaxis.label.get_window_extent(renderer)
    box = ax.get_window_extent(renderer)
    assert x_label.y1 < box.y0 and y_label.x1 < box.x0  # drawn below and left of the cells
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CLASSES)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(CLASSES)


def test_a_known_cell_lands_over_its_true_and_predicted_ticks(drawn):
    fig, ax, matrix = drawn
    renderer = fig.canvas.get_renderer()
    texts = [t for t in ax.texts if t.get_text() == "97"]
    assert len(texts) == 1
    centre = np.asarray(texts[0].get_window_extent(renderer).get_points()).mean(axis=0)
    x_ticks, y_ticks = _tick_centres(ax.xaxis, renderer), _tick_centres(ax.yaxis, renderer)
    # Straight above the "ant" tick (true class), level with the "cat" tick (predicted class).
    assert min(x_ticks, key=lambda name: abs(x_ticks[name][0] - centre[0])) == "ant"
    assert min(y_ticks, key=lambda name: abs(y_ticks[name][1] - centre[1])) == "cat"
    # The colour under that text is the colour of 97, the image's maximum.
    image = ax.images[0].get_array()
    assert image[2, 0] == 97 == image.max()
    np.testing.assert_array_equal(image, matrix.T)
