"""Backbones with one contract: a list of NCHW feature maps plus `channels` and `strides`."""
