"""Runnable, end-to-end differentiable bioinformatics examples (`make demo`)."""
