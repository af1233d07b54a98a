"""Cross-package tests: float64 is on, as the oracle runs need it."""

import jax

jax.config.update("jax_enable_x64", True)
