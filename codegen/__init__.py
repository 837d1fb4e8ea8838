"""Code generator: renders the soft-operations catalogue into wrappers, tests and docs."""
