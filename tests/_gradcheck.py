"""Finite-difference check of reverse-mode gradients that compiles one program.

`jax.test_util.check_grads(jit(f), ..., modes=("rev",))` compiles three programs (the
primal for the differences, the linearised forward and its transpose); compiling
dominates the small inputs of the tests. `check_gradient` makes the same check from one
compiled program: the `value_and_grad` of a projection `⟨w, f⟩` of the outputs (and, with
`forward=True`, its JVP), `w` and the tangents `t` arguments of the program: for random
`w` and `t`, the directional derivative `∇⟨w, f⟩ · t` (and the JVP `⟨w, J t⟩`) against the
central difference of `⟨w, f⟩` along `t`.
"""

import jax
import jax.numpy as jnp
import numpy as np


def check_gradient(f, args, *, eps=1e-4, atol=1e-4, rtol=1e-4, seed=0, directions=2, forward=False):
    """Assert that the gradient of `f` at `args` matches central differences.

    `f(*args)` returns an array or a pytree of arrays; every argument is differentiated
    (float arrays or scalars). Each of `directions` random pairs (w, t) is checked on
    its own: `∇⟨w, f⟩ · t` (and with `forward`, the forward-mode `⟨w, J t⟩`) against
    `(⟨w, f(a + εt)⟩ − ⟨w, f(a − εt)⟩) / 2ε`.
    """
    args = tuple(jnp.asarray(a) for a in args)
    rng = np.random.default_rng(seed)
    out_shapes = jax.tree_util.tree_leaves(jax.eval_shape(f, *args))

    def projection(weights, *a):
        leaves = jax.tree_util.tree_leaves(f(*a))
        return sum(jnp.sum(w * leaf) for w, leaf in zip(weights, leaves, strict=True))

    argnums = tuple(range(1, len(args) + 1))

    @jax.jit
    def program(weights, tangents, *a):
        value, grads = jax.value_and_grad(projection, argnums=argnums)(weights, *a)
        if not forward:
            return value, grads, None
        _, jvp = jax.jvp(lambda *b: projection(weights, *b), a, tuple(tangents))
        return value, grads, jvp

    for _ in range(directions):
        weights = [jnp.asarray(rng.normal(size=s.shape), s.dtype) for s in out_shapes]
        tangents = [jnp.asarray(rng.normal(size=a.shape), a.dtype) for a in args]
        _, grads, jvp = program(weights, tangents, *args)
        analytic = sum(
            float(np.vdot(np.asarray(g, np.float64), np.asarray(t, np.float64)))
            for g, t in zip(grads, tangents, strict=True)
        )

        def shifted(step, weights=weights, tangents=tangents):
            moved = (a + step * t for a, t in zip(args, tangents, strict=True))
            return float(program(weights, tangents, *moved)[0])

        numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, atol=atol, rtol=rtol, err_msg="rev")
        if forward:
            np.testing.assert_allclose(float(jvp), numeric, atol=atol, rtol=rtol, err_msg="fwd")
