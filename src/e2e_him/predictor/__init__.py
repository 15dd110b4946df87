"""The parts of the predict app: network backends (PyTorch, onnxruntime), background image loading, full-
resolution refinement of high-resolution photos, video streaming, composites and the output layouts."""
