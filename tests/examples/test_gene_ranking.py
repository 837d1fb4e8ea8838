"""The gene-ranking demo learns scores whose ranking matches the target."""

import jax
import jax.numpy as jnp
import numpy as np

from examples import gene_ranking as example


def test_spearman_rises_close_to_one():
    before, after = example.train(steps=80, verbose=False)
    assert after > 0.95
    assert after > before + 0.3


def test_soft_spearman_approaches_the_exact_one_at_small_softness():
    features, target = example.simulate(jax.random.key(3), num_genes=50)
    scores = features @ jnp.arange(1.0, 1.0 + example.NUM_FEATURES)
    soft = float(example.soft_spearman(scores, target, softness=1e-3))
    np.testing.assert_allclose(soft, example.spearman(scores, target), atol=5e-3)


def test_main_saves_the_rank_plot(tmp_path):
    path = tmp_path / "figures" / "gene_ranking.png"
    result = example.main(steps=40, path=path)
    assert result.after > result.before
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
