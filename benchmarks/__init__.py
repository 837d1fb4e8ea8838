"""Speed, memory and agreement benchmarks of the soft ordering operations against SoftJAX
and hard `jnp` (`make bench`; see `benchmarks/README.md`)."""
