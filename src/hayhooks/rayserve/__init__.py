"""Hayhooks as a Ray Serve application (extra ``hayhooks[ray]``): ``hayhooks ray run``.

Each Ray Serve replica runs the very app ``hayhooks run`` serves (``create_app``), lifespan
included, so every replica loads every pipeline from the pipelines store, follows it, and takes
part in the deploy acknowledgement: a deploy through any replica returns once every replica (and
any ``hayhooks run`` worker sharing the store) serves it. Ray is imported only in this package,
and only when used.
"""

from __future__ import annotations

from types import ModuleType

INSTALL_HINT = "install the extra: pip install 'hayhooks[ray]'"


def require_ray() -> tuple[ModuleType, ModuleType]:
    """``(ray, ray.serve)``, or an ImportError that says how to get them."""
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise ImportError(f"Ray Serve is not installed ({exc}); {INSTALL_HINT}") from exc
    return ray, serve
