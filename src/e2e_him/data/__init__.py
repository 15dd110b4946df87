"""Data: readers per format, synthetic people, compositing, transforms, the DataModule."""
