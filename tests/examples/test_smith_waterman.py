"""Soft Smith–Waterman: the soft score tends to the classical one, its gradient is a soft
alignment, and training separates homologs from unrelated pairs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from examples import smith_waterman as example


def classical_smith_waterman(match: np.ndarray, gap: float) -> tuple[float, list]:
    """Textbook O(nm) Smith–Waterman with a traceback: (score, aligned (i, j) pairs)."""
    n, m = match.shape
    h = np.zeros((n + 1, m + 1))
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            h[i, j] = max(
                0.0, h[i - 1, j - 1] + match[i - 1, j - 1], h[i - 1, j] - gap, h[i, j - 1] - gap
            )
    i, j = np.unravel_index(np.argmax(h), h.shape)
    score, pairs = h[i, j], []
    while i > 0 and j > 0 and h[i, j] > 0:
        if np.isclose(h[i, j], h[i - 1, j - 1] + match[i - 1, j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif np.isclose(h[i, j], h[i - 1, j] - gap):
            i -= 1
        else:
            j -= 1
    return float(score), pairs[::-1]


def soft_operator(temperature: float):
    return example.SoftSmithWaterman(example.SmithWatermanConfig(temperature=temperature))


@pytest.mark.parametrize("seed", range(4))
def test_hard_dp_equals_classical_on_random_sequences(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(5, 25, size=2)
    a, b = rng.integers(0, 4, n), rng.integers(0, 4, m)
    substitution = np.where(np.eye(4, dtype=bool), 2.0, -1.0)
    match = substitution[a[:, None], b[None, :]]
    expected, _ = classical_smith_waterman(match, gap=1.5)
    assert float(example.smith_waterman(jnp.asarray(match), 1.5)) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(2))
def test_soft_score_tends_to_classical_as_temperature_falls(seed):
    rng = np.random.default_rng(10 + seed)
    n, m = rng.integers(8, 20, size=2)
    a, b = rng.integers(0, 4, n), rng.integers(0, 4, m)
    op = soft_operator(1.0)
    match = np.asarray(op.match_matrix(jnp.asarray(a), jnp.asarray(b)))  # +1 / -1
    expected, _ = classical_smith_waterman(match, gap=1.0)
    errors = []
    for temperature in (1.0, 0.1, 1e-3):
        soft = soft_operator(temperature)
        score = soft.apply({"seq_a": jnp.asarray(a), "seq_b": jnp.asarray(b)}, {}, None)[0]
        errors.append(float(score["score"]) - expected)
    assert all(e >= -1e-4 for e in errors)  # a log-sum-exp is never below the max
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 0.05


def test_gradient_is_a_soft_alignment_on_the_optimal_path():
    rng = np.random.default_rng(7)
    match = rng.normal(size=(12, 15))  # continuous scores: a unique optimal alignment
    match[np.arange(10), np.arange(2, 12)] += 3.0  # with a strong diagonal in it
    score, pairs = classical_smith_waterman(match, gap=1.0)
    op = soft_operator(0.01)
    soft = np.asarray(example.soft_alignment(jnp.asarray(match, jnp.float32), 1.0, op.soft_max))
    assert soft.min() >= -1e-6 and soft.max() <= 1 + 1e-5
    on_path = np.zeros_like(soft, dtype=bool)
    on_path[tuple(np.array(pairs).T)] = True
    assert soft[on_path].min() > 0.9
    assert soft[~on_path].max() < 0.1
    # At a higher temperature the mass spreads but each cell is still a probability.
    warm = np.asarray(example.soft_alignment(jnp.asarray(match), 1.0, soft_operator(1.0).soft_max))
    assert warm.min() >= -1e-6 and warm.max() <= 1 + 1e-5
    assert (warm[~on_path] > 0.01).sum() > (soft[~on_path] > 0.01).sum()


def test_gradients_reach_substitution_gap_and_temperature():
    data, _ = example.simulate(num_pairs=2, length=12, seed=3)
    op = example.SoftSmithWaterman(
        example.SmithWatermanConfig(temperature=0.5, learnable_temperature=True)
    )
    record = {"seq_a": data["seq_a"][0], "seq_b": data["seq_b"][0]}
    from flax import nnx

    grads = nnx.grad(lambda op: op.apply(record, {}, None)[0]["score"])(op)
    assert np.any(np.asarray(grads["substitution"][...]) != 0)
    assert float(grads["raw_gap"][...]) <= 0  # a dearer gap never raises the score
    assert np.isfinite(float(grads["log_temperature"][...]))
    assert jax.tree.all(jax.tree.map(lambda g: bool(jnp.all(jnp.isfinite(g))), grads))


def test_training_raises_the_auc_and_learns_transitions(tmp_path):
    op, data, labels, before, after = example.train(
        steps=40, num_pairs=64, length=20, learning_rate=0.1, verbose=False
    )
    assert after > before + 0.1
    assert after > 0.9
    matrix = np.asarray(op.symmetric_substitution())
    assert matrix[0, 2] > matrix[0, 1] and matrix[1, 3] > matrix[1, 2]  # transitions win
    assert example.plot(op, data, tmp_path / "sw.png").stat().st_size > 0
