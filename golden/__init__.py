"""Golden side of mlsnn: the specification in code (SPEC.md §2, §3, §5, §6)."""

from .errors import MlsnnError

__all__ = ["MlsnnError"]
