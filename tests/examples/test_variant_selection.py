"""The variant-selection demo puts the causal variants into the hard top-k, and the
reason it uses SoftSort rather than the default NeuralSort holds."""

import jax
import jax.numpy as jnp
import numpy as np

from examples import variant_selection as example


def test_recall_of_causal_variants_rises(tmp_path):
    initial, learned, (genotypes, phenotype, causal) = example.train(
        steps=200, verbose=False, num_variants=100
    )
    before = example.recall(initial["scores"], causal)
    after = example.recall(learned["scores"], causal)
    assert after >= 0.8
    assert after >= before + 0.4
    loss = example.loss_fn
    assert loss(learned, genotypes, phenotype, 0.2) < 0.5 * loss(initial, genotypes, phenotype, 0.2)
    assert example.plot(initial, learned, causal, tmp_path / "v.png").stat().st_size > 0


def test_selection_is_a_soft_membership_of_the_top_k():
    scores = np.linspace(-2.0, 2.0, 20)
    soft = np.asarray(example.selection(scores, softness=0.01))
    # SoftSort's soft index is row-stochastic, so a membership can overshoot 1 slightly.
    assert soft.min() >= 0.0 and soft.max() <= 1.05
    np.testing.assert_allclose(soft.sum(), example.K, rtol=1e-4)
    np.testing.assert_allclose(soft[-example.K :], 1.0, atol=0.05)
    assert soft[: -example.K].max() < 0.05


def membership_curve(method: str, softness: float) -> np.ndarray:
    """Membership of variant 0 in the top K as its score rises from -1 to 5, the other
    199 scores standard normal (the example's initial scores)."""
    others = jax.random.normal(jax.random.key(1), (example.NUM_VARIANTS,))
    values = jnp.linspace(-1.0, 5.0, 25)
    curve = jax.vmap(lambda v: example.selection(others.at[0].set(v), softness, method)[0])
    return np.asarray(curve(values))


def test_neuralsort_membership_falls_as_a_score_rises():
    """The module docstring's reason: at the example's softness NeuralSort's membership
    peaks below the top and falls back as a score keeps rising, SoftSort's does not."""
    for softness in (1.0, 0.2):
        soft = membership_curve("softsort", softness)
        assert soft[-1] >= 0.75 * soft.max()
        assert soft[-1] > 1.5 * soft[0]
    neural = membership_curve("neuralsort", 0.2)
    assert neural.max() > 0.3
    assert neural[-1] < 0.05  # the highest score is no longer selected
    # At softness 1.0 every row piles onto the current maximum.
    x = jax.random.normal(jax.random.key(1), (example.NUM_VARIANTS,))
    _, rows = example.soft_ops.top_k(x, example.K, softness=1.0, method="neuralsort")
    assert np.all(np.asarray(rows)[:, int(jnp.argmax(x))] > 0.5)
