"""``rdstd view``: look at episodes the way the schema understands them, in Rerun (``pip install 'rdstd[viewer]'``).

Each episode becomes one Rerun recording, logged columnar (``send_columns``) on a ``frame`` and a ``time``
timeline, with a layout generated from the canonical schema and the validator's findings at their frames. Works on
canonical datasets (local or ``s3://…``) and on any source rdstd reads (converted on the fly, nothing written).

Entry points: :func:`rdstd.view.session.save` (one .rrd per episode), :func:`rdstd.view.session.serve` (the web
viewer on 127.0.0.1), :func:`rdstd.view.session.spawn` (the native viewer). ``import rdstd.view`` does not import
Rerun; :func:`require_rerun` says how to install it when it is missing.
"""

from __future__ import annotations

from types import ModuleType

from rdstd.errors import MissingDependencyError

__all__ = ["require_rerun"]


def require_rerun() -> ModuleType:
    """The ``rerun`` module, or an error naming the ``viewer`` extra."""
    try:
        import rerun
    except ImportError as exc:
        raise MissingDependencyError("rerun-sdk", "viewer", purpose="view episodes") from exc
    return rerun
