"""The variant-selection demo puts the causal variants into the hard top-k."""

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
