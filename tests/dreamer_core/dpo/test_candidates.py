"""DPO candidates as shards: written a shard of controls at a time, they are the candidates (and
OKS) that generating and scoring every control at once gives; each carries its control's labels;
the pairs' candidates read back by key, and a missing one is a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamer_core.datasets.shards import read_index
from dreamer_core.dpo.candidates import (
    candidate_images,
    candidate_key,
    control_chunks,
    first_controls,
    read_candidates,
    write_candidates,
)
from dreamer_core.dpo.pairs import score_candidates
from dreamer_core.generate.base import generate_batched
from dreamer_core.generate.tiny import TinyGenerator, TinyGeneratorConfig
from dreamer_core.keypoints.heatmap import HeatmapNet, HeatmapNetConfig
from tests.dreamer_core.datasets.test_shards import make_sample, write


def test_chunked_candidates_equal_the_whole_set_at_once(tmp_path):
    controls = tmp_path / "controls"
    controls.mkdir()
    write(controls, [make_sample(i, size=32) for i in range(5)], "shard-000000.tar")
    write(controls, [make_sample(i, size=32) for i in range(5, 9)], "shard-000001.tar")
    keys, pose_ids = first_controls(controls, 7)
    assert keys == [f"s{i:06d}" for i in range(7)] and pose_ids == [f"pose_{i:06d}" for i in range(7)]
    torch.manual_seed(0)
    gen = TinyGenerator(TinyGeneratorConfig(image_size=32, unshuffle=2, block_out_channels=(16, 32), sample_steps=2))
    detector = HeatmapNet(HeatmapNetConfig(width=8, depth=1)).eval()
    prompts = [f"a person {i}" for i in range(7)]
    seeds = np.arange(14).reshape(7, 2) + 100
    out = tmp_path / "candidates"
    oks = write_candidates(gen, detector, control_chunks(controls, 7, size=3), keys, prompts, seeds, out)
    assert list(read_index(out)) == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]  # 3 + 3 + 1 controls

    samples = [make_sample(i, size=32) for i in range(7)]
    ctl = torch.stack([torch.from_numpy(s.control).permute(2, 0, 1).float() / 255 for s in samples])
    whole = generate_batched(gen, ctl.repeat_interleave(2, 0), [p for p in prompts for _ in range(2)],
                             seeds.reshape(-1).tolist(), 32).reshape(7, 2, 3, 32, 32)  # fmt: skip
    kps = torch.tensor(np.array([s.labels["keypoints_2d"][:17] for s in samples]), dtype=torch.float32)
    masks = torch.stack([torch.from_numpy(s.mask).float()[None] / 255 for s in samples])
    np.testing.assert_allclose(oks, score_candidates(detector, whole, kps, masks), atol=1e-6)

    wanted = [candidate_key(keys[c], j) for c in (0, 4, 6) for j in (0, 1)]
    found = read_candidates(out, set(wanted))
    back = candidate_images(found, wanted)
    expected = (whole[[0, 0, 4, 4, 6, 6], [0, 1, 0, 1, 0, 1]].clamp(0, 1) * 255).round() / 255
    assert torch.allclose(back, expected, atol=1e-6)
    assert np.array_equal(found[wanted[2]].control, samples[4].control)
    assert found[wanted[3]].labels == {**samples[4].labels, "candidate": 1, "seed": 109}
    with pytest.raises(ValueError, match="not in its shards"):
        read_candidates(out, {candidate_key(keys[0], 5)})
    with pytest.raises(ValueError, match="not the ones the pair tables list"):
        write_candidates(gen, detector, control_chunks(controls, 7), keys[::-1], prompts, seeds, tmp_path / "again")
