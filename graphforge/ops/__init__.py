"""The op registry and the functional API (``gf.relu``, ``gf.matmul``, ...), one family per module."""
from . import registry
from .creation import *  # noqa: F401,F403
from .control_flow import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .math_ops import *  # noqa: F401,F403
from .nn_ops import *  # noqa: F401,F403
from .reduction import *  # noqa: F401,F403
from .registry import NOT_DIFFERENTIABLE, Attr, OpDef, Sample, all_ops, get_op, register_op
from .shape_ops import *  # noqa: F401,F403
from . import creation, elementwise, linalg, nn_ops, reduction, shape_ops
from . import control_flow, math_ops

__all__ = (["registry", "NOT_DIFFERENTIABLE", "Attr", "OpDef", "Sample", "all_ops", "get_op", "register_op"]
           + creation.__all__ + elementwise.__all__ + linalg.__all__ + nn_ops.__all__ + reduction.__all__
           + shape_ops.__all__ + control_flow.__all__ + math_ops.__all__)
from . import random  # noqa: E402
from .random import *  # noqa: F401,F403,E402

__all__ += random.__all__
from . import quantize  # noqa: E402  (quantized ops; names stay in graphforge.ops.quantize)
from . import barrier  # noqa: E402,F401  (optimization_barrier, for rematerialisation)
from .barrier import stop_gradient  # noqa: E402
__all__ = __all__ + ["stop_gradient"]
from .contraction import einsum  # noqa: E402,F401  (N-ary Einstein summation, ops/contraction.py)
__all__ = __all__ + ["einsum"]
from .selection import topk  # noqa: E402,F401  (ops/selection.py)
__all__ = __all__ + ["topk"]
from .data_dependent import compress, nonzero, unique  # noqa: E402,F401  (ops/data_dependent.py)
__all__ = __all__ + ["nonzero", "compress", "unique"]
from .data_dependent import non_max_suppression  # noqa: E402,F401
__all__ = __all__ + ["non_max_suppression"]
from .linalg_det import det  # noqa: E402,F401  (ops/linalg_det.py)
__all__ = __all__ + ["det"]
from .strings import regex_full_match, string_concat, string_normalizer, string_split  # noqa: E402,F401  (ops/strings.py)
__all__ = __all__ + ["string_normalizer", "string_concat", "string_split", "regex_full_match"]
from .vision_grid import affine_grid, grid_sample  # noqa: E402,F401  (ops/vision_grid.py)
__all__ = __all__ + ["grid_sample", "affine_grid"]
from .vision_roi import max_roi_pool, roi_align  # noqa: E402,F401  (ops/vision_roi.py)
__all__ = __all__ + ["roi_align", "max_roi_pool"]
from .vision_deform import deform_conv2d  # noqa: E402,F401  (ops/vision_deform.py)
__all__ = __all__ + ["deform_conv2d"]
from .rotary import rotary_embedding  # noqa: E402,F401  (ops/rotary.py)
__all__ = __all__ + ["rotary_embedding"]
from .col2im import col2im  # noqa: E402,F401  (ops/col2im.py)
__all__ = __all__ + ["col2im"]
from .interpolate import interpolate  # noqa: E402,F401  (ops/interpolate.py: resize by gather, any size)
__all__ = __all__ + ["interpolate"]
