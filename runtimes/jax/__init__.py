"""jax back end."""
