"""FSDP / ZeRO-3-style sharding plan for ``gf.Trainer(..., mesh={"data": N}, sharding="fsdp")``.

Every trainable parameter (and buffer) with at least ``min_size`` elements is sharded over the
``data`` mesh axis along one of its dims (the largest that ``N`` divides); its optimizer-state twins
(adam's mu/nu) follow it (``Distributed.opt_shardings``), so params and optimizer state take ~1/N of
the bytes per device. Nothing is hand-written: the plan is a set of exact-name ``param_sharding``
rules, and XLA's SPMD partitioner all-gathers each weight where a layer uses it and reduce-scatters
its gradient — the same step function, numerically single-device training.
``per_device_bytes(trainer)`` reports what one device holds.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import ConfigError

__all__ = ["fsdp_rules", "per_device_bytes", "SHARDINGS"]

SHARDINGS = (None, "fsdp")


def fsdp_rules(shapes: Mapping[str, tuple], data_size: int, min_size: int = 1024,
               data_axis: str = "data") -> dict[str, tuple]:
    """``{param name: PartitionSpec entries}`` sharding each param of ``>= min_size`` elements over
    ``data_axis`` along its largest dim divisible by ``data_size`` (smaller or indivisible params stay
    replicated)."""
    rules: dict[str, tuple] = {}
    if data_size <= 1:
        return rules
    for name, shape in shapes.items():
        shape = tuple(shape)
        if not shape or int(np.prod(shape)) < min_size:
            continue
        dims = sorted((d for d in range(len(shape)) if shape[d] % data_size == 0), key=lambda d: -shape[d])
        if dims:
            spec = [None] * (dims[0] + 1)
            spec[dims[0]] = data_axis
            rules[name] = tuple(spec)
    return rules


def resolve_fsdp(sharding, mesh, param_sharding, params: Mapping[str, object], min_size: int):
    """``(mesh, param_sharding)`` for the Trainer: unchanged without ``sharding``; for ``"fsdp"`` the
    mesh resolved (all devices on ``data`` by default) and the FSDP rules."""
    if sharding not in SHARDINGS:
        raise ConfigError(f"gf.Trainer: sharding={sharding!r}: use None or 'fsdp'")
    if sharding is None:
        return mesh, param_sharding
    if param_sharding is not None:
        raise ConfigError("gf.Trainer: sharding='fsdp' is a whole plan; it does not combine with param_sharding",
                          hint="give one of them")
    import jax
    from jax.sharding import Mesh

    from .distributed import make_mesh

    if mesh is None:
        mesh = make_mesh({"data": jax.device_count()})
    elif not isinstance(mesh, Mesh):
        mesh = make_mesh(mesh)
    if "data" not in mesh.axis_names:
        raise ConfigError("gf.Trainer: sharding='fsdp' shards over the mesh's 'data' axis; this mesh has "
                          f"{tuple(mesh.axis_names)}")
    shapes = {n: tuple(np.shape(v)) for n, v in params.items()}
    return mesh, fsdp_rules(shapes, int(mesh.shape["data"]), min_size)


def per_device_bytes(trainer) -> dict[str, int]:
    """Bytes of params (and buffers) and of optimizer state held by the first device (the most any
    one device holds for an even plan)."""
    import jax

    def held(tree) -> int:
        total = 0
        for leaf in jax.tree_util.tree_leaves(tree):
            if not hasattr(leaf, "addressable_shards"):
                total += int(np.asarray(leaf).nbytes)
                continue
            dev = leaf.addressable_shards[0].device if not hasattr(leaf.sharding, "mesh") else \
                leaf.sharding.mesh.devices.flat[0]
            total += sum(int(s.data.nbytes) for s in leaf.addressable_shards if s.device == dev)
        return total

    return {"params": held(trainer.device_params), "optimizer": held(trainer.opt_state)}
