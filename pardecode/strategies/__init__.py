"""Built-in strategies, registered through the same hook third-party plugins implement."""

from ..core.plugins import hookimpl


@hookimpl
def pardecode_register_strategies(register):
    from .above import SJDAbove
    from .ar import AR
    from .jacobi import Jacobi
    from .sjd import SJD
    from .sjd2 import SJD2

    for cls in (AR, Jacobi, SJD, SJD2, SJDAbove):
        register(cls.name, cls, cls.__doc__)
