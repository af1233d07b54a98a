"""optref.audit: The numerical oracle that audits the installed Optax against optref."""

__all__: list[str] = []
