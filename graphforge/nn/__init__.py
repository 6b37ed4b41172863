"""Model-definition API: Module, Sequential/seq, layers and functional losses."""
from . import functional, init
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layers_all
from .module import Lambda, Module, ModuleList, Sequential, seq
from .parameter import Buffer, Parameter

__all__ = ["functional", "init", "Lambda", "Module", "ModuleList", "Sequential", "seq", "Buffer",
           "Parameter"] + list(_layers_all)
