"""Control-conditioned image generation: prompts, generator backends, sampling and training."""
