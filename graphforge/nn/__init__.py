"""Model-definition API: Module, Sequential/seq, layers and functional losses."""
from . import functional, init
from .attention import *  # noqa: F401,F403
from .attention import __all__ as _attention_all
from .conv import *  # noqa: F401,F403
from .conv import __all__ as _conv_all
from .embedding import *  # noqa: F401,F403
from .embedding import __all__ as _embedding_all
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layers_all
from .module import Lambda, Module, ModuleList, Sequential, seq
from .norm import *  # noqa: F401,F403
from .norm import __all__ as _norm_all
from .parameter import Buffer, Parameter
from .regularization import *  # noqa: F401,F403
from .regularization import __all__ as _regularization_all
from .transformer import *  # noqa: F401,F403
from .transformer import __all__ as _transformer_all

__all__ = (["functional", "init", "Lambda", "Module", "ModuleList", "Sequential", "seq", "Buffer", "Parameter"]
           + list(_layers_all) + list(_conv_all) + list(_norm_all) + list(_regularization_all)
           + list(_embedding_all) + list(_attention_all) + list(_transformer_all))
from .positional import *  # noqa: F401,F403,E402
from .positional import __all__ as _positional_all  # noqa: E402
from .decoder import *  # noqa: F401,F403,E402
from .decoder import __all__ as _decoder_all  # noqa: E402

__all__ += list(_positional_all) + list(_decoder_all)
from .recurrent import *  # noqa: F401,F403,E402
from .recurrent import __all__ as _recurrent_all  # noqa: E402

__all__ += list(_recurrent_all)
from .generation import *  # noqa: F401,F403,E402
from .generation import __all__ as _generation_all  # noqa: E402

__all__ += list(_generation_all)
from .remat import checkpoint as _checkpoint, remat  # noqa: E402  (rematerialisation marks)

__all__ += ["remat"]
