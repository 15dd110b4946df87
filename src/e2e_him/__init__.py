"""E2E-HIM: End-to-End Human Instance Matting (Liu et al., TCSVT 2023), trainable with Lightning + Hydra.

The entry points live here (`train`, `eval`, `predict`, `export`, `convert_release`); the parts they run are
in the packages, lowest first: `utils` (config, instantiation, logging), `data`, `metrics` (definitions),
`models` and `losses`, `visual` (every picture), then `evaluation`, `predictor` and `callbacks`.
"""

from e2e_him.utils.resolvers import CONF_DIR, REPO_ROOT, register

__version__ = "0.1.0"
__all__ = ["CONF_DIR", "REPO_ROOT", "__version__"]

register()
