"""deqbench: a benchmark of deep equilibrium models for imaging inverse problems."""

__version__ = "0.1.0"
