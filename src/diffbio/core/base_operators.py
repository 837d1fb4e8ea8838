"""Flax NNX operator base classes built on the soft operations.

An operator here is a datarax ``OperatorModule``: a Flax NNX module whose ``apply``
transforms one record, and which datarax applies to a whole batch (``vmap`` or ``scan``)
when it is called on a ``Batch`` or run as a stage of a ``Pipeline``. The base class in
this module adds one thing every soft operator needs: a *temperature*, the value passed
as ``softness`` to the functions of `diffbio.core.soft_ops`, either fixed or learned.

This module needs the optional dependencies Flax and datarax:

```bash
pip install 'diffbio-soft-ops[operators]'
```

`diffbio.core.soft_ops` itself never imports either of them.

Reference: Paulus et al. (2026), "SoftJAX & SoftTorch: Empowering Automatic Differentiation
Libraries with Informative Gradients",
arXiv:2603.08824, for the soft operations the operators call.
"""

from __future__ import annotations

from typing import Any

try:
    import jax
    import jax.numpy as jnp
    from datarax.core.config import OperatorConfig
    from datarax.core.operator import OperatorModule
    from flax import nnx
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "diffbio.core.base_operators needs the optional dependencies flax and datarax; "
        "install the extra with `pip install 'diffbio-soft-ops[operators]'`"
        f" (the import failed with: {error})"
    ) from error

from diffbio.core import soft_ops

__all__ = ["TemperatureOperator"]

DEFAULT_TEMPERATURE = 1.0


class TemperatureOperator(OperatorModule):
    """A datarax operator that carries a soft-operation temperature.

    The temperature is the ``softness`` handed to `diffbio.core.soft_ops`: small values
    behave like the hard operation, large values smooth it. Subclasses implement
    ``apply(data, state, metadata, random_params=None, stats=None)`` for one record and
    read the temperature from `_temperature`, or use the helpers `soft_max` and
    `soft_argmax`, which pass it through.

    With ``learnable_temperature=True`` the temperature is an ``nnx.Param`` stored in
    **log space** (the parameter is ``log_temperature``): gradient descent updates the
    logarithm, so the temperature ``exp(log_temperature)`` stays positive however far a
    step goes, and its gradient is finite everywhere. With ``learnable_temperature=False``
    (the default) it is a plain Python float, a constant of the traced program rather
    than model state, so no optimiser ever sees it.

    Args:
        config: An ``OperatorConfig`` (a frozen dataclass). Its ``temperature`` field
            (default 1.0 when the config has none) sets the initial temperature, which
            must be positive; its ``learnable_temperature`` field (default ``False``)
            makes it an ``nnx.Param``. Every other ``OperatorConfig`` field
            (``stochastic``, ``stream_name``, ``batch_strategy``) keeps its datarax meaning.
        rngs: ``nnx.Rngs``, required by datarax when ``config.stochastic`` is true.
        name: An optional name for the operator.

    Raises:
        ValueError: If the temperature is not a positive finite number.

    Example:
        ```python
        from dataclasses import dataclass

        import jax.numpy as jnp
        from datarax.core.config import OperatorConfig

        from diffbio.core import soft_ops
        from diffbio.core.base_operators import TemperatureOperator


        @dataclass(frozen=True)
        class FilterConfig(OperatorConfig):
            temperature: float = 0.5
            learnable_temperature: bool = True
            threshold: float = 20.0


        class SoftFilter(TemperatureOperator):
            def apply(self, data, state, metadata, random_params=None, stats=None):
                keep = soft_ops.greater(
                    data["quality"], self.config.threshold, softness=self._temperature
                )
                return {**data, "keep": keep}, state, metadata


        op = SoftFilter(FilterConfig())
        op._temperature             # Array(0.5): exp(op.log_temperature)
        op.soft_max(jnp.array([1.0, 3.0]))  # 3.0 + 0.5 * log(1 + exp(-4)), about 3.009
        ```

    Reference:
        Paulus et al. (2026), arXiv:2603.08824, for the soft operations.
    """

    def __init__(
        self,
        config: OperatorConfig,
        *,
        rngs: nnx.Rngs | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        temperature = float(getattr(config, "temperature", DEFAULT_TEMPERATURE))
        if not (temperature > 0.0 and temperature < float("inf")):
            raise ValueError(f"temperature must be positive and finite, got {temperature}")
        learnable = bool(getattr(config, "learnable_temperature", False))
        self.learnable_temperature = nnx.static(learnable)
        if learnable:
            initial = jnp.log(jnp.asarray(temperature, dtype=jnp.result_type(float)))
            self.log_temperature = nnx.Param(initial)
        else:
            self.fixed_temperature = nnx.static(temperature)

    @property
    def _temperature(self) -> jax.Array | float:
        """The current temperature: the ``softness`` to pass to `soft_ops`.

        Returns:
            ``exp(log_temperature)`` (a scalar array, differentiable) for a learnable
            temperature, the configured Python float otherwise.
        """
        if self.learnable_temperature:
            return jnp.exp(self.log_temperature[...])
        return self.fixed_temperature

    @property
    def temperature(self) -> jax.Array | float:
        """The current temperature; the public name of `_temperature`.

        Returns:
            The same value as `_temperature`.
        """
        return self._temperature

    def soft_max(self, values: jax.Array, axis: int | tuple[int, ...] | None = None) -> jax.Array:
        """Smooth maximum: ``temperature * logsumexp(values / temperature)``.

        It lies between ``max(values)`` and ``max(values) + temperature * log(n)`` for
        ``n`` reduced values and tends to the maximum as the temperature tends to 0. Its
        gradient with respect to ``values`` is ``softmax(values / temperature)``, a
        probability distribution over the reduced positions, and it is differentiable in
        the temperature as well. Entries equal to ``-inf`` are ignored.

        Args:
            values: The array to reduce.
            axis: Axis or axes to reduce; ``None`` (the default) reduces all of them.

        Returns:
            The smooth maximum, with the reduced axes removed.
        """
        temperature = self._temperature
        values = jnp.asarray(values)
        # -inf entries contribute exp(-inf) = 0; the double `where` keeps them out of the
        # temperature derivative too (which would otherwise hold 0 * inf = nan).
        finite = values > -jnp.inf
        scaled = jnp.where(finite, jnp.where(finite, values, 0.0) / temperature, -jnp.inf)
        return temperature * jax.nn.logsumexp(scaled, axis=axis)

    def soft_argmax(self, logits: jax.Array, axis: int = -1) -> jax.Array:
        """Soft argmax: ``soft_ops.argmax(logits, axis=axis, softness=temperature)``.

        Args:
            logits: The scores to take the argmax of.
            axis: The axis to take it along (default the last).

        Returns:
            A SoftIndex: a probability distribution over the positions of ``axis``
            (moved to the last axis, so each row sums to 1), concentrating on the
            position of the maximum as the temperature tends to 0. Differentiable in
            ``logits`` and in the temperature.
        """
        return soft_ops.argmax(logits, axis=axis, softness=self._temperature)

    def apply(
        self,
        data: Any,
        state: Any,
        metadata: dict[str, Any] | None,
        random_params: Any = None,
        stats: dict[str, Any] | None = None,
    ) -> tuple[Any, Any, dict[str, Any] | None]:
        """Transform one record; subclasses override this.

        datarax calls it positionally as ``apply(data, state, metadata, key, stats)``
        for every record of a batch (under ``vmap`` or ``scan``), so the fourth argument
        is the record's PRNG key for a stochastic operator and ``None`` otherwise.

        Args:
            data: The record's data, a PyTree of arrays without a batch axis.
            state: The record's state PyTree.
            metadata: The record's metadata (datarax passes ``None`` in batch mode).
            random_params: The record's PRNG key, or ``None`` for a deterministic operator.
            stats: The batch statistics from ``compute_statistics``, or ``None``.

        Returns:
            ``(data, state, metadata)`` after the transformation.

        Raises:
            NotImplementedError: Always, in the base class.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement apply()")
