"""Build the anny model cache (~790 MB, ~60 s once) and compile Warp's skinning kernel, so that
the first materialization and the tests start fast. Run by `make setup`."""

import time

from orchestration.env import apply_defaults

apply_defaults("tiny")

import torch  # noqa: E402

from dreamer_core.bodies import load_body_model  # noqa: E402

t0 = time.perf_counter()
body = load_body_model()
with torch.no_grad():
    body.forward(body.default_params(2))
print(f"anny ready in {time.perf_counter() - t0:.1f} s")
