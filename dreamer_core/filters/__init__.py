"""Multi-stage filtering of generated samples: crowding / empty, pose alignment (OKS), image
quality, near-duplicates; plus the dataset card and the BEDLAM-style export."""
