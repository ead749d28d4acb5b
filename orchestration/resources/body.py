"""The body model as a resource (anny by default; SMPL/SMPL-X from a user model folder)."""

from __future__ import annotations

import functools
import json
from typing import Any

import dagster as dg
import torch

from dreamer_core.bodies import BodyModel, load_body_model
from dreamer_core.config import BodyModelSettings
from orchestration.settings import SETTINGS

_BM = SETTINGS.body_model


@functools.lru_cache(maxsize=2)
def _load(settings_json: str) -> BodyModel:
    return load_body_model(BodyModelSettings(**json.loads(settings_json)))


@functools.cache
def _renderer(body: BodyModel, device: str) -> Any:
    from dreamer_core.render.renderer import BodyRenderer

    return BodyRenderer(body, device=device)


class BodyModelResource(dg.ConfigurableResource):
    """The fields of ``dreamer_core.config.BodyModelSettings`` (a test keeps them equal) but
    ``allow_pickle_models``: whether official ``.pkl`` files may be unpickled is the deployment's
    choice (params.yaml), never a run's. While it is on, the model folder is params.yaml's too
    (a run could otherwise point the trusted unpickler at files of its choosing)."""

    name: str = _BM.name
    model_dir: str = _BM.model_dir
    gender: str = _BM.gender
    num_betas: int = _BM.num_betas

    def settings(self) -> BodyModelSettings:
        if _BM.allow_pickle_models and self.model_dir != _BM.model_dir:
            raise dg.Failure(f"resources.body_model.model_dir {self.model_dir!r}: with body_model.allow_pickle_models "
                             f"on, models load only from params.yaml's model_dir {_BM.model_dir!r}")  # fmt: skip
        values = {**self.model_dump(), "allow_pickle_models": _BM.allow_pickle_models}
        return BodyModelSettings.from_mapping(values, "resources.")

    def load(self) -> BodyModel:
        """One instance per process: anny construction costs ~0.5 s even with a warm cache."""
        return _load(json.dumps(self.settings().to_dict(), sort_keys=True))

    def load_with_renderer(self, device: Any = "cpu") -> tuple[BodyModel, Any]:
        """The body model and its (Warp) renderer casting rays on ``device`` (a ``torch.device``
        or its name), one per body model, device and process."""
        from dreamer_core.devices import warp_device

        body = self.load()
        return body, _renderer(body, warp_device(torch.device(device)))
