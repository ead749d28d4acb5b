"""Body models behind one interface (see ``base.BodyModel``)."""

from __future__ import annotations

from dreamer_core.bodies.base import BodyModel, BodyOutput, ParamSpec
from dreamer_core.config import BodyModelSettings
from dreamer_core.errors import ConfigError
from dreamer_core.threads import fixed_threads


def load_body_model(settings: BodyModelSettings | None = None, device: str = "cpu") -> BodyModel:
    """Build the body model the ``body_model`` settings name (anny by default), with one torch
    thread count whatever the caller runs with: the tensors construction derives (anny's joint
    correspondence inverse, measured) differ in their last bits between 1 and 2 threads, and one
    process reuses its body for every asset it runs, so a shard would otherwise depend on which
    asset happened to load the body first (a serial CLI run against one partition re-run alone)."""
    with fixed_threads():
        return _build(settings or BodyModelSettings(), device)


def _build(settings: BodyModelSettings, device: str) -> BodyModel:
    if settings.name == "anny":
        from dreamer_core.bodies.anny_backend import AnnyBody

        return AnnyBody(device=device)
    from dreamer_core.bodies.smplx_backend import SMPLXBody

    if not settings.model_dir:
        raise ConfigError(
            f"body_model.model_dir: required for body_model.name={settings.name!r}; point it at the folder "
            f"holding {settings.name.upper()}_NEUTRAL.npz"
        )
    return SMPLXBody(
        settings.model_dir,
        model_type=settings.name,
        gender=settings.gender,
        num_betas=settings.num_betas,
        allow_pickle_models=settings.allow_pickle_models,
        device=device,
    )


__all__ = ["BodyModel", "BodyOutput", "ParamSpec", "load_body_model"]
