"""onnx back end."""
