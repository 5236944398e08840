"""mm_jax: zero-shot text-to-motion generation in JAX (the MotionMillion recipe)."""

__version__ = "0.1.0"
