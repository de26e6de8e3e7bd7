"""Label noise: exact counts, realized noise, nesting across fractions and sizes, class counts."""

import numpy as np
import pytest

from sweep.engine.noise import check_matrix, check_pairs, make_noisy_labels, picked_count
from sweep.engine.subsets import nested_subset

K = 10


@pytest.fixture
def labels():
    return np.random.default_rng(123).integers(0, K, size=2000)


@pytest.mark.parametrize("mode", ["shuffle", "symmetric", "matrix"])
@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.333, 0.5, 1.0])
def test_exact_number_of_examples_picked(labels, mode, fraction):
    matrix = np.full((K, K), 1 / K) if mode == "matrix" else None
    out = make_noisy_labels(labels, fraction, mode=mode, num_classes=K, seed=1, param=matrix)
    assert out.picked.sum() == picked_count(fraction, len(labels)) == int(np.floor(fraction * 2000 + 0.5))
    # Only picked examples may change.
    assert np.array_equal(out.labels[~out.picked], labels[~out.picked])


def test_symmetric_changes_every_picked_label_to_another_class(labels):
    out = make_noisy_labels(labels, 0.4, mode="symmetric", num_classes=K, seed=3)
    assert np.all(out.labels[out.picked] != labels[out.picked])
    assert out.realized_noise == pytest.approx(0.4)
    # New labels cover every other class, roughly uniformly.
    assert set(np.unique(out.labels[out.picked])) == set(range(K))


def test_shuffle_preserves_class_counts_and_realized_noise_is_below_request(labels):
    out = make_noisy_labels(labels, 0.5, mode="shuffle", num_classes=K, seed=4)
    assert np.array_equal(np.bincount(out.labels, minlength=K), np.bincount(labels, minlength=K))
    assert out.realized_noise == pytest.approx(np.mean(out.labels != labels))
    # About 1/K of the shuffled labels land back on the truth.
    assert 0.5 * (1 - 1 / K) - 0.04 < out.realized_noise < 0.5


def test_picked_sets_are_nested_across_fractions(labels):
    previous = np.zeros(len(labels), dtype=bool)
    for fraction in [0.0, 0.05, 0.1, 0.2, 0.4, 0.6, 1.0]:
        picked = make_noisy_labels(labels, fraction, mode="symmetric", num_classes=K, seed=9).picked
        assert np.all(picked[previous]), f"picked set at {fraction} does not contain the smaller one"
        previous = picked


def test_symmetric_new_labels_are_common_random_numbers_across_fractions(labels):
    small = make_noisy_labels(labels, 0.1, mode="symmetric", num_classes=K, seed=9)
    large = make_noisy_labels(labels, 0.3, mode="symmetric", num_classes=K, seed=9)
    assert np.array_equal(small.labels[small.picked], large.labels[small.picked])


def test_noise_draws_are_shared_across_training_sizes(labels):
    big = nested_subset(labels, 1500, seed=2)
    small = nested_subset(labels, 500, seed=2)
    noisy_big = make_noisy_labels(labels[big], 0.2, mode="symmetric", num_classes=K, seed=2,
                                  example_ids=big, population=len(labels))
    noisy_small = make_noisy_labels(labels[small], 0.2, mode="symmetric", num_classes=K, seed=2,
                                    example_ids=small, population=len(labels))
    # An example corrupted in both gets the same wrong label in both.
    pos_big = {ex: i for i, ex in enumerate(big)}
    both = [i for i, ex in enumerate(small) if noisy_small.picked[i] and noisy_big.picked[pos_big[ex]]]
    assert len(both) > 20
    assert all(noisy_small.labels[i] == noisy_big.labels[pos_big[small[i]]] for i in both)


def test_pairs_flip_fraction_of_each_source_class_only(labels):
    out = make_noisy_labels(labels, 0.3, mode="pairs", num_classes=K, seed=5, param=[(3, 5), (5, 3), (9, 1)])
    for source, target in [(3, 5), (5, 3), (9, 1)]:
        members = labels == source
        assert out.picked[members].sum() == picked_count(0.3, members.sum())
        assert np.all(out.labels[members & out.picked] == target)
    untouched = ~np.isin(labels, [3, 5, 9])
    assert not out.picked[untouched].any()
    assert out.realized_noise < 0.3


def test_matrix_noise_follows_the_transition_rows(labels):
    matrix = np.eye(K)
    matrix[2] = 0
    matrix[2, 7] = 1.0  # class 2 always goes to 7 when picked
    out = make_noisy_labels(labels, 1.0, mode="matrix", num_classes=K, seed=6, param=matrix)
    assert np.all(out.labels[labels == 2] == 7)
    assert np.array_equal(out.labels[labels != 2], labels[labels != 2])


def test_same_seed_same_labels_and_different_seed_differs(labels):
    a = make_noisy_labels(labels, 0.3, mode="shuffle", num_classes=K, seed=11)
    b = make_noisy_labels(labels, 0.3, mode="shuffle", num_classes=K, seed=11)
    c = make_noisy_labels(labels, 0.3, mode="shuffle", num_classes=K, seed=12)
    assert np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)


def test_pairs_with_unknown_class_is_rejected():
    with pytest.raises(ValueError, match="unknown class 'kitten'"):
        check_pairs([("cat", "kitten")], ["cat", "dog"])
    with pytest.raises(ValueError, match="twice"):
        check_pairs([("cat", "dog"), ("cat", "dog")], ["cat", "dog"])


@pytest.mark.parametrize(
    "matrix, message",
    [
        ([[1.0, 0.0]], r"must be 2 x 2 .* got shape \(1, 2\)"),
        ([[0.5, 0.4], [0.0, 1.0]], "row 0 sums to 0.9"),
        ([[1.5, -0.5], [0.0, 1.0]], ">= 0"),
        ([["a", "b"], ["c", "d"]], "array of numbers"),
    ],
)
def test_bad_matrices_are_rejected(matrix, message):
    with pytest.raises(ValueError, match=message):
        check_matrix(matrix, 2)


def test_a_pairs_default_shown_in_help_parses_back_to_itself():
    from sweep.engine.noise import CIFAR10_PAIRS, format_pairs, parse_pairs

    assert parse_pairs(format_pairs(CIFAR10_PAIRS)) == CIFAR10_PAIRS
