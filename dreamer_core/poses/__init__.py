"""Pose sources (anatomical sampler, AMASS folders), diversity selection and the pose bank."""
