"""Lightning callbacks of the suite."""

from e2e_him.callbacks.checkpoints import TimedCheckpoint
from e2e_him.callbacks.image_panels import ValImagePanels

__all__ = ["TimedCheckpoint", "ValImagePanels"]
