"""E2E-HIM: End-to-End Human Instance Matting (Liu et al., TCSVT 2023), trainable with Lightning + Hydra."""

from e2e_him.resolvers import REPO_ROOT, register

__version__ = "0.1.0"
CONF_DIR = REPO_ROOT / "conf"

register()
