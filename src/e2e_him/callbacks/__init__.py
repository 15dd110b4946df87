"""Lightning callbacks of the suite."""

from e2e_him.callbacks.image_panels import ValImagePanels

__all__ = ["ValImagePanels"]
