"""DiffBio: differentiable building blocks for bioinformatics pipelines in JAX."""
