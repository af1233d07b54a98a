"""optref.linesearch: Backtracking and zoom line searches and L-BFGS."""

__all__: list[str] = []
