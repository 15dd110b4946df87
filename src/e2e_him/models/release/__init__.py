"""The released layout: the authors' released Swin-T inference network, rebuilt from this project's parts.

The release (aipixel/E2E-HIM, `matmodel.E2EHIMST`) departs from the paper in places (docs/architecture.md,
"The released layout"): no transformer encoder, a decoder over the H/32 map without positions, the class
probabilities appended to the latent codes, a fusion U-Net that also reads sigmoid(M_pred) and has a
position-attention block at H/32, trimaps at H/8 upsampled 8x, and a clamp instead of a sigmoid on alpha.
`ReleaseE2EHIM` computes the same function for any batch size and any input whose sides are multiples of 32,
with the output contract of `E2EHIM` (docs/contracts.md), so that training, evaluation, prediction and the
notebooks take it unchanged; `e2e_him.convert_release` maps the release's state dict onto it.
"""

from e2e_him.models.release.network import ReleaseE2EHIM

__all__ = ["ReleaseE2EHIM"]
