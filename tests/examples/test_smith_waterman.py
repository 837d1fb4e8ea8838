"""Soft Smith–Waterman: the soft score tends to the classical one (within 1e-3 at
temperature 1e-3 on random read pairs), its gradient is a soft alignment, and training
separates homologs from unrelated pairs."""

from itertools import pairwise

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from examples import smith_waterman as example

TEXTBOOK = np.where(np.eye(4, dtype=bool), 1.0, -1.0)
PADDED = 60  # longest sequence of the random pairs


def classical_smith_waterman(match: np.ndarray, gap: float) -> tuple[float, list]:
    """Textbook O(nm) Smith–Waterman with a traceback: (score, paired (i, j) positions)."""
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
        if abs(h[i, j] - (h[i - 1, j - 1] + match[i - 1, j - 1])) < 1e-9:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif abs(h[i, j] - (h[i - 1, j] - gap)) < 1e-9:
            i -= 1
        else:
            j -= 1
    return float(score), pairs[::-1]


def soft_operator(temperature: float, substitution=None, gap=None):
    op = example.SoftSmithWaterman(example.SmithWatermanConfig(temperature=temperature))
    if substitution is not None:
        op.substitution[...] = jnp.asarray(substitution, jnp.float32)
    if gap is not None:
        op.raw_gap[...] = jnp.asarray(np.log(np.expm1(gap)), jnp.float32)  # softplus^-1
    return op


def read_pair(rng: np.random.Generator, n: int, m: int) -> dict:
    """Two random reads of lengths n and m, with random base qualities."""
    (seq_a, qual_a), (seq_b, qual_b) = (
        example.sequence(rng, rng.integers(0, 4, length)) for length in (n, m)
    )
    return {
        "seq_a": jnp.asarray(seq_a), "qual_a": jnp.asarray(qual_a),
        "seq_b": jnp.asarray(seq_b), "qual_b": jnp.asarray(qual_b),
    }


def same_quality(record: dict, quality: float = 20.0) -> dict:
    """The record with every base at one quality: scores depend on the letters only."""
    return {
        **record,
        "qual_a": jnp.full(record["seq_a"].shape, quality),
        "qual_b": jnp.full(record["seq_b"].shape, quality),
    }


def encode(text: str) -> jnp.ndarray:
    return jnp.asarray([example.ALPHABET.index(c) for c in text], jnp.int32)


def scores_and_alignments(matches: list[np.ndarray], gaps: list[float], max_fn):
    """Score and d score / d match of each matrix, in one compiled call: every matrix is
    padded to PADDED x PADDED with impossible (NEG) scores, which no alignment uses."""
    padded = np.stack(
        [
            np.pad(m, ((0, PADDED - m.shape[0]), (0, PADDED - m.shape[1])),
                   constant_values=example.NEG)
            for m in matches
        ]
    )
    fn = jax.jit(jax.vmap(jax.value_and_grad(lambda m, g: example.smith_waterman(m, g, max_fn))))
    scores, grads = fn(jnp.asarray(padded, jnp.float32), jnp.asarray(gaps, jnp.float32))
    grads = np.asarray(grads)
    return np.asarray(scores), [g[: m.shape[0], : m.shape[1]] for g, m in zip(grads, matches,
                                                                                strict=True)]


@pytest.fixture(scope="module")
def random_pairs():
    """20 random read pairs, lengths 20–60, each with its match matrix and gap penalty:
    even pairs under the initial textbook matrix (+1/-1, gap 1), odd pairs under a random
    real-valued matrix and gap, as a trained operator has."""
    rng = np.random.default_rng(2024)
    pairs = []
    for k in range(20):
        n, m = rng.integers(20, 61, size=2)
        record = read_pair(rng, n, m)
        if k % 2 == 0:
            op = soft_operator(1e-3)
        else:
            substitution = rng.normal(-1.0, 0.5, (4, 4))
            substitution[np.diag_indices(4)] = rng.uniform(0.5, 2.0, 4)
            op = soft_operator(1e-3, substitution, gap=rng.uniform(0.5, 2.0))
        # Scored on reads padded to PADDED bases (one shape, so one compilation), then cut:
        # match[i, j] depends on base i of a and base j of b only.
        padded = {key: np.pad(np.asarray(v), (0, PADDED - v.shape[0])) for key, v in record.items()}
        match = np.asarray(op.match_matrix(padded))[:n, :m]
        pairs.append((op, record, match, float(op.gap)))
    return pairs


@pytest.fixture(scope="module")
def soft_results(random_pairs):
    op = random_pairs[0][0]  # all at temperature 1e-3
    matches = [match for _, _, match, _ in random_pairs]
    gaps = [gap for _, _, _, gap in random_pairs]
    scores, alignments = scores_and_alignments(matches, gaps, op.soft_max)
    classical = [classical_smith_waterman(m.astype(np.float64), g) for m, g in zip(matches, gaps,
                                                                                  strict=True)]
    return scores, alignments, classical


def test_soft_score_equals_classical_within_1e3_at_temperature_1e3(random_pairs, soft_results):
    scores, _, classical = soft_results
    lengths = [(int(r["seq_a"].shape[0]), int(r["seq_b"].shape[0])) for _, r, _, _ in random_pairs]
    assert min(min(nm) for nm in lengths) >= 20 and max(max(nm) for nm in lengths) <= 60
    errors = scores - np.array([score for score, _ in classical])
    assert np.abs(errors).max() <= 1e-3, errors
    assert errors.min() >= -1e-4  # a log-sum-exp is never below the max (float32 rounding)
    # The padded, batched call is the operator's own score.
    op, record, _, _ = random_pairs[1]
    assert float(op.apply(record, {}, None)[0]["score"]) == pytest.approx(scores[1], abs=1e-4)


def test_gradient_is_a_soft_alignment_on_the_classical_path(soft_results):
    _, alignments, classical = soft_results
    for soft, (_, path) in zip(alignments, classical, strict=True):
        assert soft.min() >= -1e-6 and soft.max() <= 1 + 1e-5
        on_path = np.zeros(soft.shape, dtype=bool)
        on_path[tuple(np.array(path).T)] = True
        # Rounded, the soft alignment is the classical traceback, and nearly all of its
        # mass lies on it.
        np.testing.assert_array_equal(soft > 0.5, on_path)
        assert soft[on_path].mean() > 0.95
        assert soft[~on_path].sum() < 0.1 * on_path.sum()


@pytest.mark.parametrize("seed", range(4))
def test_hard_dp_equals_classical_on_random_sequences(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(5, 25, size=2)
    a, b = rng.integers(0, 4, n), rng.integers(0, 4, m)
    match = np.where(np.eye(4, dtype=bool), 2.0, -1.0)[a[:, None], b[None, :]]
    expected, _ = classical_smith_waterman(match, gap=1.5)
    assert float(example.smith_waterman(jnp.asarray(match), 1.5)) == pytest.approx(expected)


def test_ties_between_optimal_alignments_raise_the_soft_score_by_t_log_n():
    """Why the scores are per position: ``CGAACT`` / ``CGACT`` has two optimal alignments
    when a base is scored by its letter alone (the gap before or after the second A), so
    the soft score is the classical one plus ``t log 2``; with the reads' own base
    qualities the two differ and the soft score is the classical one."""
    t = 1e-3
    op = soft_operator(t)
    record = {"seq_a": encode("CGAACT"), "seq_b": encode("CGACT")}
    record = {**record, "qual_a": jnp.asarray([21.0, 17.0, 12.0, 24.0, 9.0, 15.0]),
              "qual_b": jnp.asarray([14.0, 22.0, 11.0, 19.0, 16.0])}
    for rec, excess in ((same_quality(record), t * np.log(2.0)), (record, 0.0)):
        match = np.asarray(op.match_matrix(rec))
        expected, _ = classical_smith_waterman(match.astype(np.float64), float(op.gap))
        soft = float(op.apply(rec, {}, None)[0]["score"])
        assert soft - expected == pytest.approx(excess, abs=2e-5)


def test_an_insertion_next_to_a_deletion_is_counted_once():
    """With a cheap gap, ``CCCCAGGGG`` / ``CCCCTGGGG`` is best aligned with A deleted and T
    inserted; the two orders of those gaps are one alignment, and the soft score at a low
    temperature carries no ``t log 2`` for them."""
    t = 1e-3
    op = soft_operator(t, TEXTBOOK, gap=0.3)
    record = same_quality({"seq_a": encode("CCCCAGGGG"), "seq_b": encode("CCCCTGGGG")})
    match = np.asarray(op.match_matrix(record))
    expected, path = classical_smith_waterman(match.astype(np.float64), float(op.gap))
    assert len(path) == 8  # the A-T mismatch is not paired
    soft = float(op.apply(record, {}, None)[0]["score"])
    assert soft - expected == pytest.approx(0.0, abs=2e-5)


def test_soft_score_tends_to_classical_as_temperature_falls():
    rng = np.random.default_rng(10)
    record = read_pair(rng, 14, 17)
    match = np.asarray(soft_operator(1.0).match_matrix(record), np.float64)
    expected, _ = classical_smith_waterman(match, gap=1.0)
    errors = []
    for temperature in (1.0, 0.1, 0.01, 1e-3):
        score = soft_operator(temperature).apply(record, {}, None)[0]["score"]
        errors.append(float(score) - expected)
    assert all(e >= -1e-4 for e in errors)  # a log-sum-exp is never below the max
    assert all(later <= earlier + 1e-5 for earlier, later in pairwise(errors))
    assert errors[0] > 0.1 and abs(errors[-1]) < 1e-3


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
    record = jax.tree.map(lambda column: column[0], data)
    grads = nnx.grad(lambda op: op.apply(record, {}, None)[0]["score"])(op)
    assert np.any(np.asarray(grads["substitution"][...]) != 0)
    assert float(grads["raw_gap"][...]) <= 0  # a dearer gap never raises the score
    assert np.isfinite(float(grads["log_temperature"][...]))
    assert jax.tree.all(jax.tree.map(lambda g: bool(jnp.all(jnp.isfinite(g))), grads))


def test_training_raises_the_auc_and_learns_transitions(tmp_path):
    op, data, labels, before, after = example.train(
        steps=100, num_pairs=96, length=40, verbose=False
    )
    assert after > before + 0.2
    assert after > 0.85
    matrix = np.asarray(op.symmetric_substitution())
    assert matrix[0, 2] > matrix[0, 1] and matrix[1, 3] > matrix[1, 2]  # transitions win
    assert example.plot(op, data, tmp_path / "sw.png").stat().st_size > 0
