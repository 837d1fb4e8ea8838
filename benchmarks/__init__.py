"""Speed and memory benchmarks (`make bench`), reported as ratios to hard jnp."""
