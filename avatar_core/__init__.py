"""GST avatar library: Gaussians, rasterizer backends, GST model, training, evaluation, PLY export.

May import ``dreamer_core``; never ``orchestration`` (DESIGN.md section 3).
"""
