from collections import Counter

import numpy as np

from dreamer_core.generate.prompts import SCENE_GROUPS, build_prompt


def test_scene_groups_rotate_evenly_and_prompts_are_seeded():
    prompts = [build_prompt(np.random.default_rng(i), i) for i in range(70)]
    assert Counter(p.scene_group for p in prompts) == {g: 10 for g in SCENE_GROUPS}
    again = [build_prompt(np.random.default_rng(i), i) for i in range(70)]
    assert prompts == again
    assert len({p.text for p in prompts}) > 60
    assert not any(" a orange" in p.text or " a elderly" in p.text for p in prompts)


def test_prompt_records_its_parts():
    p = build_prompt(np.random.default_rng(3), 5)
    assert p.scene in p.text and p.lighting in p.text and p.camera in p.text
    assert p.scene in SCENE_GROUPS[p.scene_group]
    assert p.text.startswith("a photo of a ") and "full body" in p.text
    assert set(p.to_dict()) == {"text", "scene_group", "scene", "person", "clothing", "lighting", "camera"}
