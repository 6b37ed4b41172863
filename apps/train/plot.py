"""``gf.plot_history``: the training curves as a PNG, without touching pyplot's global state."""
from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["plot_history"]


def plot_history(history: Mapping[str, Sequence[float]], path: str) -> str:
    """Plot every history curve (loss and metrics, with their ``val_`` twins) to a PNG at ``path``.

    Args:
        history: what ``Trainer.fit`` returned (name -> per-epoch values).
        path: the PNG file to write (atomically).

    Returns:
        ``path``.

    Raises:
        OSError: ``path`` cannot be written (nothing partial is left).

    Example:
        ```python
        gf.plot_history(trainer.fit(x, y, epochs=5), "history.png")
        ```
    """
    import io
    import os

    # a Figure on an Agg canvas, not pyplot: the user's matplotlib backend (a notebook's inline
    # one, a GUI) stays as it was and no global figure is left open
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..params_io import atomic_write_bytes

    keys = [k for k in history if not k.startswith("val_")]
    fig = Figure(figsize=(4 * max(len(keys), 1), 3))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(len(keys), 1), squeeze=False)
    for ax, k in zip(axes[0], keys):
        ax.plot(range(1, len(history[k]) + 1), history[k], label=k)
        if f"val_{k}" in history:
            ax.plot(range(1, len(history[f"val_{k}"]) + 1), history[f"val_{k}"], label=f"val_{k}")
        ax.set_xlabel("epoch")
        ax.set_title(k)
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path = os.fspath(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
