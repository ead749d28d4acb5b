"""Body models behind one interface (see ``base.BodyModel``)."""

from __future__ import annotations

from typing import Any

from dreamer_core.bodies.base import BodyModel, BodyOutput, ParamSpec
from dreamer_core.errors import ConfigError

BACKENDS = ("anny", "smpl", "smplx")


def load_body_model(settings: dict[str, Any], device: str = "cpu") -> BodyModel:
    """Build the body model named in the ``body_model`` config section."""
    name = settings.get("name", "anny")
    if name == "anny":
        from dreamer_core.bodies.anny_backend import AnnyBody

        return AnnyBody(device=device, cache_dir=settings.get("cache_dir") or None)
    if name in ("smpl", "smplx"):
        from dreamer_core.bodies.smplx_backend import SMPLXBody

        if not settings.get("model_dir"):
            raise ConfigError(
                f"body_model.model_dir: required for body_model.name={name!r}; point it at the folder "
                f"holding {name.upper()}_NEUTRAL.npz"
            )
        return SMPLXBody(
            settings["model_dir"],
            model_type=name,
            gender=settings.get("gender", "neutral"),
            num_betas=int(settings.get("num_betas", 10)),
            allow_pickle_models=bool(settings.get("allow_pickle_models", False)),
            device=device,
        )
    raise ConfigError(f"body_model.name: must be one of {BACKENDS}, got {name!r}")


__all__ = ["BACKENDS", "BodyModel", "BodyOutput", "ParamSpec", "load_body_model"]
