"""Diffusion-DPO control alignment: candidates and preference pairs scored by OKS, LoRA adapters,
the DPO objective, and before/after evaluation on held-out controls."""
