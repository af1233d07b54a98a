"""optref.schedules: Optax's learning-rate schedules as differentiable Equinox modules."""

__all__: list[str] = []
