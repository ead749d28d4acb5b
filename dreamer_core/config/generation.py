"""Settings of the learnt models of the generation side: pose detector, generator, Diffusion-DPO."""

from __future__ import annotations

from dataclasses import dataclass

from dreamer_core.config.fields import TEXT, Section, integer, items, number, one_of, setting

GENERATOR_BACKENDS = ("tiny", "sd15_controlnet", "sdxl_controlnet", "flux_control")
_WIDTH = integer(8, 4096, multiple_of=8)


@dataclass(frozen=True)
class PoseDetectorSettings(Section):
    """The detector that scores OKS (DPO preference, filter, mining) and its independent judge."""

    key = "pose_detector"
    backend: str = setting("heatmap", "heatmap: trained here on reference renders | vitpose: pretrained",
                           one_of("heatmap", "vitpose"))  # fmt: skip
    weights: str = setting("", "vitpose: local folder or hub id (e.g. usyd-community/vitpose-base-simple)", TEXT)
    steps: int = setting(20_000, "training steps", integer(1, 10_000_000))
    batch_size: int = setting(64, "training batch", integer(1, 100_000))
    lr: float = setting(0.002, "learning rate", number(1e-7, 1.0))
    width: int = setting(64, "channels of the first stage", _WIDTH)
    judge_width: int = setting(32, "the independent judge of DPO: its own seed, width and depth", _WIDTH)
    judge_depth: int = setting(1, "judge: stages", integer(1, 8))
    judge_steps: int = setting(10_000, "judge: training steps", integer(1, 10_000_000))
    loader_workers: int = setting(4, "DataLoader workers decoding training shards (0: in the training process; "
                                  "the batches are the same for any number)", integer(0, 256))  # fmt: skip

    def constraints(self) -> list[tuple[bool, str]]:
        return [(self.backend != "vitpose" or bool(self.weights),
                 "backend vitpose needs weights (a folder saved with save_pretrained, or a hub id)")]  # fmt: skip


@dataclass(frozen=True)
class GeneratorSettings(Section):
    """The control-conditioned generator: tiny (trained here on reference renders) or a pretrained pipeline."""

    key = "generator"
    backend: str = setting("tiny", "tiny: trained here | sd15_controlnet | sdxl_controlnet | flux_control "
                           "(pretrained)", one_of(*GENERATOR_BACKENDS))  # fmt: skip
    weights: str = setting("", "pretrained backends: base pipeline folder or hub id", TEXT)
    control_weights: str = setting("", "pretrained backends: ControlNet / control-LoRA folder or hub id", TEXT)
    objective: str = setting("sample", "tiny: sample (x0) | v_prediction | epsilon | flow (README: generator "
                             "recipes)", one_of("sample", "v_prediction", "epsilon", "flow"))  # fmt: skip
    unshuffle: int = setting(4, "tiny: space-to-depth factor around the UNet", one_of(1, 2, 4, 8))
    channels: tuple[int, ...] = setting([64, 128, 128], "tiny: UNet block widths (self-attention at the last)",
                                        items(_WIDTH.ok, "a list of 2 to 5 channel widths, each a multiple of 8",
                                              min_len=2, max_len=5))  # fmt: skip
    steps: int = setting(20_000, "tiny: training steps", integer(1, 100_000_000))
    batch_size: int = setting(64, "tiny: training batch", integer(1, 100_000))
    lr: float = setting(0.001, "tiny: learning rate", number(1e-7, 1.0))
    ema_decay: float = setting(0.999, "tiny: decay of the weights' moving average", number(0.0, 0.99999))
    control_dropout: float = setting(0.1, "tiny: share of training samples without control (enables control "
                                     "guidance)", number(0.0, 0.9))  # fmt: skip
    loader_workers: int = setting(4, "tiny: DataLoader workers decoding training shards (0: in the training process; "
                                  "the batches are the same for any number)", integer(0, 256))  # fmt: skip
    sample_steps: int = setting(28, "DDIM / flow-Euler steps when sampling", integer(1, 1000))
    guidance_scale: float = setting(3.5, "classifier-free guidance (tiny: on the control; pretrained: the "
                                    "pipeline's)", number(0.0, 100.0))  # fmt: skip
    eval_samples: int = setting(1024, "held-out controls scored for oks_matched / oks_shuffled",
                                integer(2, 1_000_000))  # fmt: skip

    def constraints(self) -> list[tuple[bool, str]]:
        pretrained = self.backend != "tiny"
        return [
            (not pretrained or bool(self.weights), "a pretrained backend needs weights (a pipeline folder or hub id)"),
            (not pretrained or bool(self.control_weights),
             "a pretrained backend needs control_weights (a ControlNet / control-LoRA folder or hub id)"),
        ]  # fmt: skip


@dataclass(frozen=True)
class DPOSettings(Section):
    """Diffusion-DPO: candidates per control, the pair rule, the LoRA, training and the held-out gain."""

    key = "dpo"
    num_controls: int = setting(4096, "training-pose controls (control_renders) that get candidates",
                                integer(1, 100_000_000))  # fmt: skip
    num_candidates: int = setting(4, "seeded samples per control", integer(2, 64))
    min_gap: float = setting(0.05, "keep best vs worst when OKS(best) - OKS(worst) >= min_gap (PoseDreamer 0.05) ...",
                             number(0.0, 1.0))  # fmt: skip
    min_winner_oks: float = setting(0.5, "... and OKS(best) >= min_winner_oks (COCO area; derived on validation)",
                                    number(0.0, 1.0))  # fmt: skip
    pairing: str = setting("best_worst", "best_worst: one pair per control (PoseDreamer) | all: every pair passing "
                           "the rule", one_of("best_worst", "all"))  # fmt: skip
    beta: float = setting(1000.0, "DPO temperature (the paper uses ~100 with its loss scale); README: DPO sweep",
                          number(1e-6, 1e9))  # fmt: skip
    steps: int = setting(2000, "training steps", integer(1, 100_000_000))
    batch_pairs: int = setting(16, "pairs per step", integer(1, 100_000))
    lr: float = setting(0.0001, "LoRA learning rate", number(1e-7, 1.0))
    lora_rank: int = setting(16, "LoRA rank (alpha = rank)", integer(1, 1024))
    lora_targets: tuple[str, ...] = setting(["to_q", "to_k", "to_v", "to_out.0"], "module names that get LoRA "
                                            "adapters", items(lambda t: isinstance(t, str) and bool(t),
                                                              "a non-empty list of module names"))  # fmt: skip
    loader_workers: int = setting(4, "DataLoader workers decoding candidate shards into pairs (0: in the training "
                                  "process; the batches are the same for any number)", integer(0, 256))  # fmt: skip
    heldout_controls: int = setting(1024, "reference_renders controls of held-out poses (never used for pairs)",
                                    integer(2, 1_000_000))  # fmt: skip
    heldout_seeds: int = setting(4, "fixed sampling seeds per held-out control; the gain is judged against its "
                                 "spread over them", integer(2, 100))  # fmt: skip
    heldout_split: str = setting("test", "test: report the gain | val: what sweeps that choose defaults evaluate on",
                                 one_of("val", "test"))  # fmt: skip
