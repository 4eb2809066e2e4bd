"""Former module of `sjd_above`, kept so that old imports keep working: see `.sjd_above`."""

from .sjd_above import SJDAbove

__all__ = ["SJDAbove"]
