"""cmi-jax: robust disentanglement under correlation shift, in JAX."""
