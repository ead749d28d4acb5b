"""Cameras, Warp ray casting and shading: control (PNCC) and reference renders of posed bodies."""
