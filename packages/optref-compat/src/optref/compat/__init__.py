"""optref.compat: Shims between optref and Optax, states included."""

__all__: list[str] = []
