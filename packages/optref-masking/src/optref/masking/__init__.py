"""optref.masking: Masks, partitions, frozen parameters and parameter groups."""

__all__: list[str] = []
