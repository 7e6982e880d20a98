"""Torch-free inference helpers (numpy + OpenCV + onnxruntime or openvino): letterbox, ONNX and OpenVINO
sessions, drawing.

Nothing under ``erpose.runtime`` may import torch.
"""
