"""``load_body_model`` gives the same body whatever thread count its caller runs with."""

import torch

from dreamer_core.bodies import load_body_model
from dreamer_core.threads import fixed_threads


def _vertices(threads: int) -> torch.Tensor:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        body = load_body_model()
    finally:
        torch.set_num_threads(before)
    with torch.no_grad(), fixed_threads():
        return body.forward({"body_pose": torch.full((2, 21, 3), 0.2)}).vertices


def test_a_body_loaded_with_two_threads_poses_like_one_loaded_with_one():
    """Before the load ran under fixed threads, anny's joint correspondence inverse (and so every
    posed vertex) differed in its last bits: a process that loaded its body in a 2-thread asset
    rendered other shards than a process that loaded it in a fixed-thread one."""
    assert torch.equal(_vertices(2), _vertices(1))
