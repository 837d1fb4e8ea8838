"""The reference document's examples, run verbatim, with the values it prints.

Snippets that use a name they do not define (``x``, ``reads``, ``quality_scores``,
``scores``) get it from the namespace, as a reader's surrounding code would.
"""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from diffbio.core import soft_ops


def run(snippet: str, **namespace) -> dict:
    scope = {"jax": jax, "jnp": jnp, "soft_ops": soft_ops, **namespace}
    exec(textwrap.dedent(snippet), scope)  # noqa: S102
    return scope


def test_sigmoidal_foundation():
    x = jnp.linspace(-1.0, 1.0, 9)
    scope = run(
        """
        from diffbio.core.soft_ops import sigmoidal
        # C-infinity smooth (logistic sigmoid)
        y = sigmoidal(x, softness=0.1, mode="smooth")
        y_smooth = y
        # C1 differentiable (cubic Hermite)
        y = sigmoidal(x, softness=0.1, mode="c1")
        """,
        x=x,
    )
    np.testing.assert_allclose(scope["y_smooth"], jax.nn.sigmoid(x / 0.1), rtol=1e-6)
    u = np.clip(np.asarray(x) / 0.5, -1, 1)
    np.testing.assert_allclose(scope["y"], -(u**3) / 4 + 3 * u / 4 + 0.5, atol=1e-6)


def test_softness_parameter_greater():
    snippet = """
        import jax.numpy as jnp
        from diffbio.core import soft_ops
        x = jnp.array([0.5, 1.5, 2.5])
        threshold = 1.0
        # Tight approximation -- almost binary
        tight = soft_ops.greater(x, threshold, softness=0.01)
        # Array([~0.0, ~1.0, ~1.0])
        # Moderate smoothing -- good gradient flow
        moderate = soft_ops.greater(x, threshold, softness=0.1)
        # Array([~0.007, ~0.993, ~1.0])
        # Heavy smoothing -- gradients everywhere but less decisive
        heavy = soft_ops.greater(x, threshold, softness=1.0)
        # Array([~0.38, ~0.62, ~0.82])
        """
    scope = run(snippet)
    np.testing.assert_allclose(scope["tight"], [0.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(scope["moderate"], [0.007, 0.993, 1.0], atol=5e-4)
    np.testing.assert_allclose(scope["heavy"], [0.38, 0.62, 0.82], atol=5e-3)


def test_softbool():
    quality_scores = jnp.array([15.0, 22.0, 18.0, 30.0])
    scope = run(
        """
        from diffbio.core.soft_ops import SoftBool
        # A soft comparison returns SoftBool
        mask: SoftBool = soft_ops.greater(quality_scores, 20.0, softness=0.1)
        # Values near 0.0 mean "probably false", near 1.0 means "probably true"
        """,
        quality_scores=quality_scores,
    )
    mask = np.asarray(scope["mask"])
    assert mask.dtype == np.float32 and np.all((mask >= 0) & (mask <= 1))
    np.testing.assert_allclose(mask, [0.0, 1.0, 0.0, 1.0], atol=1e-6)


def test_st_decorator_on_an_elementwise_op():
    x = jnp.array([-1.0, -0.05, 0.05, 2.0])
    scope = run(
        """
        from diffbio.core.soft_ops import st, relu
        relu_st = st(relu)
        # Forward pass uses jax.nn.relu (hard), backward uses soft relu
        values = relu_st(x, softness=0.1, mode="smooth")
        """,
        x=x,
    )
    np.testing.assert_array_equal(scope["values"], jax.nn.relu(x))
    st_grad = jax.grad(lambda v: scope["relu_st"](v, softness=0.1).sum())(x)
    soft_grad = jax.grad(lambda v: soft_ops.relu(v, softness=0.1).sum())(x)
    np.testing.assert_allclose(st_grad, soft_grad, rtol=1e-6)
    np.testing.assert_allclose(st_grad, jax.nn.sigmoid(x / 0.1), rtol=1e-6)


def test_prebuilt_st_variants_of_the_foundation():
    x = jnp.array([-0.3, 0.2, 1.7])
    np.testing.assert_array_equal(soft_ops.greater_st(x, 0.0, softness=0.1), [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(soft_ops.relu_st(x, softness=0.1), jax.nn.relu(x))


def test_grad_replace():
    scope = run(
        """
        from diffbio.core.soft_ops import grad_replace

        @grad_replace
        def custom_threshold(x, t, forward: bool = True):
            if forward:
                return (x > t).astype(float)  # Hard threshold
            return jax.nn.sigmoid((x - t) / 0.1)  # Soft gradient source
        """
    )
    threshold = scope["custom_threshold"]
    x = jnp.array([-0.2, 0.0, 0.3])
    np.testing.assert_array_equal(threshold(x, 0.0), [0.0, 0.0, 1.0])
    grad = jax.grad(lambda v: threshold(v, 0.0).sum())(x)
    s = jax.nn.sigmoid(x / 0.1)
    np.testing.assert_allclose(grad, s * (1 - s) / 0.1, rtol=1e-6)


def test_soft_quality_filtering():
    reads = jnp.arange(5 * 4, dtype=jnp.float32).reshape(5, 4)
    scope = run(
        """
        import jax.numpy as jnp
        from diffbio.core import soft_ops

        quality_scores = jnp.array([15.0, 22.0, 18.0, 30.0, 12.0])
        threshold = 20.0

        # Soft mask: values near 1.0 for reads above threshold
        mask = soft_ops.greater(quality_scores, threshold, softness=0.5)

        # Apply mask to read weights (keeps gradient flow)
        weighted_reads = reads * mask[..., None]
        """,
        reads=reads,
    )
    expected_mask = jax.nn.sigmoid((jnp.array([15.0, 22.0, 18.0, 30.0, 12.0]) - 20.0) / 0.5)
    np.testing.assert_allclose(scope["mask"], expected_mask, rtol=1e-6)
    np.testing.assert_allclose(scope["mask"], [0, 0.982, 0.018, 1, 0], atol=1e-3)
    np.testing.assert_allclose(scope["weighted_reads"], reads * expected_mask[:, None], rtol=1e-6)


def test_conditional_logic():
    scope = run(
        """
        import jax.numpy as jnp
        from diffbio.core import soft_ops

        x = jnp.array([-1.0, 0.5, -0.3, 2.0, -0.1])

        # Soft ReLU via where: keep positive values, zero out negatives
        # Equivalent to soft_ops.relu(x) but demonstrates composability
        condition = soft_ops.greater(x, 0.0, softness=0.1)
        result = soft_ops.where(condition, x, jnp.zeros_like(x))
        """
    )
    x = np.array([-1.0, 0.5, -0.3, 2.0, -0.1])
    np.testing.assert_allclose(scope["result"], x / (1 + np.exp(-x / 0.1)), rtol=1e-5)
    np.testing.assert_allclose(scope["result"], jax.nn.relu(x), atol=0.03)


def test_combining_soft_filters():
    scope = run(
        """
        import jax.numpy as jnp
        from diffbio.core import soft_ops

        quality = jnp.array([25.0, 15.0, 30.0, 10.0])
        mapping_quality = jnp.array([40.0, 50.0, 20.0, 60.0])

        # Soft masks for each criterion
        q_pass = soft_ops.greater(quality, 20.0, softness=0.5)
        mq_pass = soft_ops.greater(mapping_quality, 30.0, softness=0.5)

        # Combined filter: both conditions must be satisfied
        combined = soft_ops.logical_and(q_pass, mq_pass)
        # Result: high probability only for reads passing both thresholds
        """
    )
    np.testing.assert_allclose(scope["combined"], scope["q_pass"] * scope["mq_pass"], rtol=1e-6)
    np.testing.assert_allclose(scope["combined"], [1.0, 0.0, 0.0, 0.0], atol=1e-4)


def test_softindex():
    scores = jnp.array([[0.1, 2.0, 1.5], [3.0, -1.0, 0.0]])
    scope = run(
        """
        from diffbio.core.soft_ops import SoftIndex
        # Soft argmax returns a probability distribution over positions
        idx: SoftIndex = soft_ops.argmax(scores, axis=-1, softness=0.1)
        # Shape: same as scores but last dim is a probability distribution
        # idx[..., i] is the probability that position i holds the maximum
        """,
        scores=scores,
    )
    idx = np.asarray(scope["idx"])
    assert idx.shape == scores.shape
    np.testing.assert_allclose(idx.sum(-1), 1.0, rtol=1e-6)
    assert list(idx.argmax(-1)) == [1, 0]


def test_st_decorator_on_sort():
    x = jnp.array([[0.3, -1.2, 2.0, 0.9], [1.0, 0.0, -3.0, 4.0]])
    scope = run(
        """
        from diffbio.core.soft_ops import st, sort

        sort_st = st(sort)
        # Forward pass uses jnp.sort (hard), backward uses soft sort
        values = sort_st(x, axis=-1, softness=0.1, mode="smooth")
        """,
        x=x,
    )
    np.testing.assert_array_equal(scope["values"], jnp.sort(x, axis=-1))
    st_grad = jax.grad(lambda v: (scope["sort_st"](v, softness=0.1) * jnp.arange(4.0)).sum())(x)
    soft_grad = jax.grad(lambda v: (soft_ops.sort(v, softness=0.1) * jnp.arange(4.0)).sum())(x)
    np.testing.assert_allclose(st_grad, soft_grad, rtol=1e-5, atol=1e-6)


def test_prebuilt_st_variants():
    x = jnp.array([[0.2, 0.9, 0.1, 0.85, 0.3, 0.95, 0.4, 0.5, 0.6, 0.7, 0.05]] * 2)
    y = jnp.zeros_like(x)
    scope = run(
        """
        from diffbio.core import soft_ops

        # Hard forward, soft backward for each operation
        a = soft_ops.sort_st(x, axis=-1, softness=0.1)
        b = soft_ops.argmax_st(x, axis=-1, softness=0.1)
        c = soft_ops.greater_st(x, y, softness=0.1)
        d = soft_ops.relu_st(x, softness=0.1)
        e = soft_ops.rank_st(x, axis=0, softness=0.1)
        f = soft_ops.top_k_st(x, k=10, softness=0.1)
        # ... and 21 more
        """,
        x=x,
        y=y,
    )
    np.testing.assert_array_equal(scope["a"], jnp.sort(x, axis=-1))
    np.testing.assert_array_equal(scope["b"], jax.nn.one_hot(jnp.argmax(x, -1), x.shape[-1]))
    np.testing.assert_array_equal(scope["c"], (x > y).astype(x.dtype))
    np.testing.assert_array_equal(scope["d"], jax.nn.relu(x))
    np.testing.assert_array_equal(scope["e"], 1.5 * jnp.ones_like(x))  # tied rows: average rank
    values, index = jax.lax.top_k(x, 10)
    np.testing.assert_array_equal(scope["f"][0], values)
    np.testing.assert_array_equal(scope["f"][1], jax.nn.one_hot(index, x.shape[-1]))
    st_names = [n for n in soft_ops.__all__ if n.endswith("_st")]
    assert len(st_names) == 27


def test_soft_gene_ranking():
    scope = run(
        """
        import jax.numpy as jnp
        from diffbio.core import soft_ops

        # Expression matrix: (num_genes, num_samples)
        expression = jnp.array([[2.1, 0.5, 3.8, 1.2],
                                [4.0, 1.1, 0.3, 2.7]])

        # Continuous ranks along the gene axis (axis=0)
        # Rank 1 = lowest expression, rank n = highest
        ranks = soft_ops.rank(expression, axis=0, softness=0.1)
        """
    )
    ranks = np.asarray(scope["ranks"])
    assert ranks.shape == (2, 4)
    np.testing.assert_allclose(ranks, [[1, 1, 2, 1], [2, 2, 1, 2]], atol=0.05)
    np.testing.assert_allclose(ranks.sum(0), 3.0, atol=1e-4)


def test_soft_top_k_selection():
    scope = run(
        """
        import jax.numpy as jnp
        from diffbio.core import soft_ops

        variant_scores = jnp.array([0.2, 0.9, 0.1, 0.85, 0.3, 0.95])

        # Select top 3 variants with differentiable selection
        values, soft_indices = soft_ops.top_k(variant_scores, k=3, softness=0.1)
        # values: soft-sorted top-3 scores (descending)
        # soft_indices: (3, 6) SoftIndex matrix -- each row is a probability
        # distribution over the 6 original positions
        """
    )
    values, index = np.asarray(scope["values"]), np.asarray(scope["soft_indices"])
    assert values.shape == (3,) and index.shape == (3, 6)
    np.testing.assert_allclose(values, [0.95, 0.9, 0.85], atol=0.04)  # soft, blurred by 0.1
    assert np.all(np.diff(values) <= 0)
    np.testing.assert_allclose(values, index @ np.asarray(scope["variant_scores"]), rtol=1e-5)
    np.testing.assert_allclose(index.sum(-1), 1.0, rtol=1e-6)
    assert list(index.argmax(-1)) == [5, 1, 3]


def test_differentiable_median_normalization():
    scope = run(
        """
        import jax.numpy as jnp
        from diffbio.core import soft_ops

        # Single-cell count matrix: (num_cells, num_genes)
        counts = jnp.array([[100.0, 200.0, 50.0],
                            [150.0, 80.0, 300.0]])

        # Differentiable median per cell
        cell_medians = soft_ops.median(counts, axis=-1, softness=0.1)

        # Normalize each cell by its median
        normalized = counts / cell_medians[..., None]
        """
    )
    np.testing.assert_allclose(scope["cell_medians"], [100.0, 150.0], rtol=0.06)
    sharp = soft_ops.median(scope["counts"], axis=-1, softness=1e-3)
    np.testing.assert_allclose(sharp, [100.0, 150.0], rtol=1e-4)
    np.testing.assert_allclose(
        scope["normalized"], scope["counts"] / scope["cell_medians"][:, None], rtol=1e-6
    )
