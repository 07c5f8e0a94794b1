"""Leaf helpers used by every layer of the package (no project imports)."""
from .pretrained import resolve_pretrained

__all__ = ['resolve_pretrained']
