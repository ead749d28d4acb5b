"""Prompt builder after PoseDreamer: a person (age, gender presentation, build), clothing, a scene
drawn from rotating scene groups, lighting and camera/lens, assembled by one template.

Scenes rotate through the groups by sample index (so every group appears evenly in any shard)
while everything else is drawn from a seeded RNG; each prompt is returned with its parts so the
manifest can record exactly what was asked for.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from dreamer_core.seeds import stream

SCENE_GROUPS: dict[str, tuple[str, ...]] = {
    "everyday indoor": ("in a cozy living room", "in a bright kitchen", "in a home office", "in a sunlit bedroom",
                        "in a laundry room", "in a hallway with wooden floors"),
    "social and public": ("in a busy train station", "in a shopping mall", "in a museum hall", "on a cafe terrace",
                          "in a conference room", "in a library reading room"),
    "nature": ("on a forest trail", "in a mountain meadow", "on a sandy beach", "on a riverside path",
               "on a desert dune", "in a snowy field"),
    "sports": ("on a basketball court", "on a running track", "in a yoga studio", "on a tennis court",
               "in a climbing gym", "on a soccer field"),
    "rural": ("in a farmyard", "in a vineyard", "in a village square", "in a hay field", "on a country road",
              "in an orchard"),
    "urban": ("on a city street at dusk", "on a rooftop terrace", "in a graffiti-covered alley", "on a subway platform",
              "in a parking garage", "at a crosswalk downtown"),
    "sci-fi and fantasy": ("in a neon-lit futuristic city", "in a spaceship corridor", "in an enchanted forest",
                           "in a medieval castle courtyard", "on an alien landscape", "in a steampunk workshop"),
}  # fmt: skip
AGES = ("young adult", "adult", "middle-aged", "elderly", "teenage")
PEOPLE = ("man", "woman", "person")
BUILDS = ("slim", "athletic", "average-build", "heavy-set", "tall", "short")
TOPS = ("t-shirt", "hoodie", "denim jacket", "blouse", "sweater", "sports jersey", "button-up shirt", "tank top",
        "winter coat", "summer dress")  # fmt: skip
BOTTOMS = ("jeans", "shorts", "cargo pants", "skirt", "track pants", "chinos", "leggings")
SHOES = ("sneakers", "boots", "sandals", "running shoes", "loafers")
COLOURS = ("red", "blue", "black", "white", "green", "yellow", "grey", "navy", "beige", "purple", "orange",
           "striped", "plaid", "patterned")  # fmt: skip
LIGHTING = ("soft natural light", "golden hour sunlight", "overcast daylight", "studio lighting",
            "warm indoor lighting", "dramatic side lighting", "neon light")  # fmt: skip
CAMERAS = ("shot on a 35mm lens", "shot on a 50mm lens", "wide-angle shot", "telephoto shot",
           "DSLR photo", "smartphone photo")  # fmt: skip
TEMPLATE = "a photo of a {build} {age} {person} wearing a {top_colour} {top}, {bottom_colour} {bottom} and " \
           "{shoes}, full body, {scene}, {lighting}, {camera}, highly detailed"  # fmt: skip


@dataclass(frozen=True)
class Prompt:
    text: str
    scene_group: str
    scene: str
    person: str
    clothing: str
    lighting: str
    camera: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def build_prompt(rng: np.random.Generator, index: int) -> Prompt:
    """The prompt of sample ``index``: the scene group rotates with the index, the rest is drawn."""
    groups = list(SCENE_GROUPS)
    group = groups[index % len(groups)]
    pick = lambda xs: str(xs[int(rng.integers(len(xs)))])  # noqa: E731
    parts = dict(build=pick(BUILDS), age=pick(AGES), person=pick(PEOPLE), top_colour=pick(COLOURS), top=pick(TOPS),
                 bottom_colour=pick(COLOURS), bottom=pick(BOTTOMS), shoes=pick(SHOES),
                 scene=pick(SCENE_GROUPS[group]), lighting=pick(LIGHTING), camera=pick(CAMERAS))  # fmt: skip
    return Prompt(
        text=re.sub(r"\ba (?=[aeiou])", "an ", TEMPLATE.format(**parts)),
        scene_group=group,
        scene=parts["scene"],
        person=f"{parts['build']} {parts['age']} {parts['person']}",
        clothing=f"{parts['top_colour']} {parts['top']}, {parts['bottom_colour']} {parts['bottom']}, {parts['shoes']}",
        lighting=parts["lighting"],
        camera=parts["camera"],
    )


def prompts_for(seed: int, keys: list[str]) -> list[str]:
    """One text prompt per sample key, seeded by the key (so it does not depend on batching)."""
    return [build_prompt(stream(seed, "prompt", k), i).text for i, k in enumerate(keys)]
