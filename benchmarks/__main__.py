"""`make bench`: soft sort, rank, argmax and top_k against hard `jnp` on the same shapes.

For B = 32 rows and each n, every method x mode is jit-compiled, warmed up and timed
(median of repeats, `block_until_ready`), forward and forward+backward (the gradient of
a weighted sum), and reported as a ratio to the hard baseline of the same shape and the
same pass measured in the same process: `jnp.sort` for sort / rank / top_k and
`jnp.argmax` (one-hot) for argmax. Peak memory is XLA's estimate for the compiled
forward+backward (`compiled.memory_analysis()`: arguments + outputs + temporaries).
Results are printed and written to `benchmarks/results/ordering-<n list>.md`.
"""

import argparse
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from diffbio.core import soft_ops

OPS = ("sort", "rank", "argmax", "top_k")
METHODS = ("softsort", "neuralsort", "sorting_network")
MODES = ("smooth", "c0", "c1", "c2")
BATCH = 32
K = 8
MAX_SECONDS = 20.0
MAX_BYTES = 8 * 2**30


def soft_fn(name: str, method: str, mode: str):
    def f(x):
        if name == "top_k":
            return soft_ops.top_k(x, K, softness=0.1, mode=mode, method=method)[0]
        return getattr(soft_ops, name)(x, softness=0.1, mode=mode, method=method)

    return f


def hard_fn(name: str):
    if name == "argmax":
        return lambda x: jax.nn.one_hot(jnp.argmax(x, axis=-1), x.shape[-1], dtype=x.dtype)
    return lambda x: jnp.sort(x, axis=-1)


def forward_backward(f):
    """Value and gradient of a fixed weighted sum of the output."""

    def loss(x):
        out = f(x)
        weights = jnp.cos(jnp.arange(out.size, dtype=out.dtype)).reshape(out.shape)
        return jnp.sum(out * weights)

    return jax.value_and_grad(loss)


def peak_bytes(compiled) -> int:
    stats = compiled.memory_analysis()
    if stats is None:
        return -1
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes)


def measure(f, x, repeats: int) -> tuple[float, float, int]:
    """(median seconds, compile seconds, peak bytes) of jit(f)(x)."""
    start = time.perf_counter()
    compiled = jax.jit(f).lower(x).compile()
    compile_seconds = time.perf_counter() - start
    jax.block_until_ready(compiled(x))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(x))
        times.append(time.perf_counter() - start)
        if sum(times) > MAX_SECONDS:
            break
    return statistics.median(times), compile_seconds, peak_bytes(compiled)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512, 4096])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ops", nargs="+", default=list(OPS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    args = parser.parse_args(argv)

    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, B = {BATCH}, float32")
    lines = [
        "| op | method | mode | n | fwd ratio | fwd+bwd ratio | fwd ms | fwd+bwd ms | "
        "compile s | peak MiB (fwd+bwd) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    print(lines[0])
    for n in args.sizes:
        x = jnp.asarray(np.random.default_rng(n).normal(size=(BATCH, n)), jnp.float32)
        baselines = {}
        for name in args.ops:
            key = "argmax" if name == "argmax" else "sort"
            if key not in baselines:
                hard = hard_fn(key)
                baselines[key] = (
                    measure(hard, x, args.repeats)[0],
                    measure(forward_backward(hard), x, args.repeats)[0],
                )
            base_fwd, base_bwd = baselines[key]
            for method in args.methods:
                for mode in args.modes:
                    f = soft_fn(name, method, mode)
                    if name in ("argsort", "top_k") and BATCH * n * n * 4 > MAX_BYTES:
                        print(f"skip {name} {method} {mode} n={n}: n x n output over 8 GiB")
                        continue
                    fwd, _, _ = measure(f, x, args.repeats)
                    if fwd * args.repeats > MAX_SECONDS:
                        print(
                            f"skip {name} {method} {mode} n={n} fwd+bwd: forward alone {fwd:.1f} s"
                        )
                        continue
                    bwd, compile_s, peak = measure(forward_backward(f), x, args.repeats)
                    row = (
                        f"| {name} | {method} | {mode} | {n} | {fwd / base_fwd:.1f} | "
                        f"{bwd / base_bwd:.1f} | {fwd * 1e3:.2f} | {bwd * 1e3:.2f} | "
                        f"{compile_s:.2f} | {peak / 2**20:.1f} |"
                    )
                    lines.append(row)
                    print(row, flush=True)
        print(
            f"baselines n={n}: jnp.sort fwd {baselines.get('sort', (0, 0))[0] * 1e3:.3f} ms, "
            f"fwd+bwd {baselines.get('sort', (0, 0))[1] * 1e3:.3f} ms; one-hot jnp.argmax fwd "
            f"{baselines.get('argmax', (0, 0))[0] * 1e3:.3f} ms, "
            f"fwd+bwd {baselines.get('argmax', (0, 0))[1] * 1e3:.3f} ms"
        )
    out = Path(__file__).parent / "results" / f"ordering-{'-'.join(map(str, args.sizes))}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
