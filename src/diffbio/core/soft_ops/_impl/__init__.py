"""Hand-written kernels behind the generated public wrappers of `diffbio.core.soft_ops`."""
