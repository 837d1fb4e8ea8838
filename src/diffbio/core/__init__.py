"""Core components of DiffBio: soft operations and operator base classes."""
