"""Settings of the renderer and of the two render assets (reference renders, control renders)."""

from __future__ import annotations

from dataclasses import dataclass

from dreamer_core.config.fields import TEXT, Section, integer, interval, items, number, setting
from dreamer_core.render.cameras import CameraSampling

BACKGROUND_KINDS = ("gradient", "noise", "tiles", "images")


@dataclass(frozen=True)
class RenderSettings(Section):
    """Image size, camera distribution and backgrounds shared by every rendered sample."""

    key = "render"
    image_size: int = setting(512, "output side in pixels (square crops)", integer(16, 4096))
    supersample: int = setting(2, "rays per pixel side, box-filtered down (anti-aliasing)", integer(1, 8))
    focal_range: tuple[float, float] = setting([800.0, 1600.0], "focal length in pixels of the full frame before "
                                               "cropping", interval(1.0, 1e5))  # fmt: skip
    frame_size: int = setting(1000, "full frame side before the crop around the body", integer(16, 100_000))
    distance_range: tuple[float, float] = setting([3.0, 12.0], "camera to body centre, metres",
                                                  interval(0.5, 1000.0))  # fmt: skip
    pitch_deg: float = setting(10.0, "+/- camera pitch; yaw covers the full circle; no roll", number(0.0, 89.0))
    crop_margin: float = setting(0.1, "crop = projected body box + this share on each side", number(0.0, 1.0))
    min_body_px: float = setting(150.0, "bodies smaller than this in the full frame are redrawn and counted",
                                 number(0.0, 1e5))  # fmt: skip
    backgrounds: tuple[str, ...] = setting(["gradient", "noise", "tiles"], 'backdrop kinds; add "images" with '
                                           "backgrounds_dir", items(lambda v: v in BACKGROUND_KINDS,
                                           f"a non-empty list drawn from {list(BACKGROUND_KINDS)}"))  # fmt: skip
    backgrounds_dir: str = setting("", "folder of .jpg/.png backdrops (optional)", TEXT)

    def camera_sampling(self) -> CameraSampling:
        return CameraSampling(self.focal_range, self.frame_size, self.distance_range, self.pitch_deg,
                              self.crop_margin, self.min_body_px, self.image_size)  # fmt: skip


@dataclass(frozen=True)
class ReferenceRendersSettings(Section):
    """Textured renders of posed bodies: train / val / test splits and multi-view rings (for GST)."""

    key = "reference_renders"
    num_train: int = setting(200_000, "training renders (training poses)", integer(1, 100_000_000))
    num_val: int = setting(5000, "validation renders (val poses): what defaults and thresholds are tuned on",
                           integer(1, 100_000_000))  # fmt: skip
    num_test: int = setting(5000, "test renders (test poses; held-out multi-view subjects too)",
                            integer(1, 100_000_000))  # fmt: skip
    multiview_subjects: int = setting(2000, "subjects rendered from a ring of cameras", integer(1, 1_000_000))
    multiview_heldout: int = setting(200, "multi-view subjects drawn from held-out poses, for GST evaluation",
                                     integer(0, 1_000_000))  # fmt: skip
    views_per_ring: int = setting(12, "cameras per elevation ring", integer(2, 360))
    elevations_deg: tuple[float, ...] = setting([-10.0, 10.0, 30.0], "camera ring elevations",
                                                items(number(-89.0, 89.0).ok, "a non-empty list of elevations in "
                                                      "[-89, 89] degrees"))  # fmt: skip
    multiview_radius: float = setting(3.0, "multi-view camera distance, metres", number(0.5, 100.0))
    samples_per_shard: int = setting(1000, "samples per WebDataset shard", integer(1, 1_000_000))

    def constraints(self) -> list[tuple[bool, str]]:
        return [(self.multiview_heldout < self.multiview_subjects,
                 "multiview_heldout must be smaller than multiview_subjects")]  # fmt: skip


@dataclass(frozen=True)
class ControlRendersSettings(Section):
    """PNCC control images, masks, depth and labels of training poses, one Dagster partition per shard."""

    key = "control_renders"
    num_shards: int = setting(500, "Dagster partitions shard-000000 ... (the graph's shape: params.yaml only)",
                              integer(1, 100_000))  # fmt: skip
    samples_per_shard: int = setting(1000, "samples per shard", integer(1, 1_000_000))
