"""2D keypoints: COCO object keypoint similarity (OKS), PCK, and keypoint detectors."""
