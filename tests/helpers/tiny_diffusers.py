"""Tiny randomly initialised components of the real diffusers / transformers classes behind the
`full` generator backends (the way diffusers' own tests build them), saved as pipeline folders so
that the code under test loads them exactly as it would load real weights. Nothing downloads."""

from __future__ import annotations

from pathlib import Path

import torch


def _clip_tokenizer():
    from transformers import CLIPTokenizer

    letters = list("abcdefghijklmnopqrstuvwxyz")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for ch in letters:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _clip_text(cls_name: str = "CLIPTextModel", hidden: int = 32, projection: int = 32):
    import transformers

    cfg = transformers.CLIPTextConfig(bos_token_id=0, eos_token_id=1, hidden_size=hidden, intermediate_size=37,
                                      layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, pad_token_id=1,
                                      vocab_size=1000, projection_dim=projection)  # fmt: skip
    return getattr(transformers, cls_name)(cfg)


def _t5():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate("a photo of person in the".split())}}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    cfg = T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4, decoder_start_token_id=0)
    return T5EncoderModel(cfg), tokenizer


DOWN = ("DownBlock2D", "CrossAttnDownBlock2D")


def _sd_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3, latent_channels=4,
                         norm_num_groups=4, down_block_types=["DownEncoderBlock2D"] * 2,
                         up_block_types=["UpDecoderBlock2D"] * 2)  # fmt: skip


def save_sd15(root: Path, prediction_type: str = "epsilon") -> tuple[Path, Path]:
    from diffusers import ControlNetModel, DDIMScheduler, StableDiffusionControlNetPipeline
    from diffusers import UNet2DConditionModel as Unet

    torch.manual_seed(0)
    blocks = dict(block_out_channels=(8, 16), layers_per_block=1, down_block_types=DOWN,
                  cross_attention_dim=32, norm_num_groups=4, attention_head_dim=4)  # fmt: skip
    unet = Unet(sample_size=16, in_channels=4, out_channels=4, up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                **blocks)  # fmt: skip
    controlnet = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(8, 16), **blocks)
    vae = _sd_vae()
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, prediction_type=prediction_type)  # fmt: skip
    pipe = StableDiffusionControlNetPipeline(vae=vae, text_encoder=_clip_text(), tokenizer=_clip_tokenizer(), unet=unet,
                                             controlnet=controlnet, scheduler=scheduler, safety_checker=None,
                                             feature_extractor=None, requires_safety_checker=False)  # fmt: skip
    return _save(pipe, controlnet, root)


def save_sdxl(root: Path) -> tuple[Path, Path]:
    from diffusers import ControlNetModel, EulerDiscreteScheduler, StableDiffusionXLControlNetPipeline
    from diffusers import UNet2DConditionModel as Unet

    torch.manual_seed(0)
    blocks = dict(block_out_channels=(8, 16), layers_per_block=1, down_block_types=DOWN,
                  cross_attention_dim=64, norm_num_groups=4, attention_head_dim=4, use_linear_projection=True,
                  addition_embed_type="text_time", addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
                  projection_class_embeddings_input_dim=80)  # fmt: skip
    unet = Unet(sample_size=16, in_channels=4, out_channels=4, up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                **blocks)  # fmt: skip
    controlnet = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(8, 16), **blocks)
    vae = _sd_vae()
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")  # fmt: skip
    pipe = StableDiffusionXLControlNetPipeline(
        vae=vae, text_encoder=_clip_text(), tokenizer=_clip_tokenizer(),
        text_encoder_2=_clip_text("CLIPTextModelWithProjection"), tokenizer_2=_clip_tokenizer(),
        unet=unet, controlnet=controlnet, scheduler=scheduler,
    )  # fmt: skip
    return _save(pipe, controlnet, root)


def save_flux_control(root: Path) -> tuple[Path, Path]:
    """A FLUX control pipeline; its 'control weights' are a LoRA saved for its transformer."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxControlPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=8, out_channels=4, num_layers=1,
                                         num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                                         joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
                                         guidance_embeds=True)  # fmt: skip
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                        latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.0609, scaling_factor=1.5035)  # fmt: skip
    t5, t5_tok = _t5()
    pipe = FluxControlPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=_clip_text(),
                               tokenizer=_clip_tokenizer(), text_encoder_2=t5, tokenizer_2=t5_tok,
                               transformer=transformer)  # fmt: skip
    base = root / "pipeline"
    pipe.save_pretrained(base)
    from peft import LoraConfig, get_peft_model_state_dict

    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"]))
    lora = root / "control_lora"
    FluxControlPipeline.save_lora_weights(lora, transformer_lora_layers=get_peft_model_state_dict(transformer))
    return base, lora


def _save(pipe, controlnet, root: Path) -> tuple[Path, Path]:
    base, control = root / "pipeline", root / "controlnet"
    pipe.save_pretrained(base)
    controlnet.save_pretrained(control)
    return base, control
