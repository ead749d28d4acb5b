"""GST avatar library: Gaussians, rasterizer backends, GST model, training, evaluation, PLY export.

May import ``dreamer_core``; never ``orchestration`` (``tests/test_layering.py`` checks it).
"""
