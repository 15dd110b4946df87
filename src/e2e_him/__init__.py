"""E2E-HIM: End-to-End Human Instance Matting (Liu et al., IEEE TCSVT 2023), trainable with Lightning + Hydra."""

__version__ = "0.1.0"
