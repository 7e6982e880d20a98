"""Torch-free inference helpers (numpy + OpenCV + onnxruntime): letterbox, ONNX session, drawing.

Nothing under ``erpose.runtime`` may import torch.
"""
