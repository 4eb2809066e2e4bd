"""Built-in strategies, registered through the same hook third-party plugins implement."""

from ..core.plugins import hookimpl


@hookimpl
def pardecode_register_strategies(register):
    from .above import SJDAbove
    from .ar import AR
    from .jacobi import Jacobi
    from .pjd import PJD
    from .relaxed import GSD, EntropyAware, Lantern
    from .sjd import SJD
    from .sjd2 import SJD2
    from .sjd_pac import SJDPAC
    from .sjd_pac_tree import SJDPACTree
    from .sjd_reuse import SJDReuse
    from .zipar import ZipAR

    for cls in (AR, Jacobi, SJD, SJD2, SJDAbove, SJDPAC, SJDPACTree, SJDReuse, Lantern, GSD, EntropyAware, ZipAR, PJD):
        register(cls.name, cls, cls.__doc__)
