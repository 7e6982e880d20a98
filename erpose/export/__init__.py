"""Model export: ONNX with in-graph decoding and erpose metadata, INT8 (quantize), OpenVINO IR (openvino);
see docs/deploy.md."""

from __future__ import annotations

from erpose.export.onnx import ExportError, OnnxExportConfig, build_metadata, export_onnx

__all__ = ["ExportError", "OnnxExportConfig", "build_metadata", "export_onnx"]
