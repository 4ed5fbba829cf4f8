"""Choosing ONNX Runtime execution providers explicitly, with clear failures."""
from __future__ import annotations

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
DEVICES = ("cpu", "cuda", "auto")


class DeviceError(RuntimeError):
    pass


def choose_providers(device: str, available: list[str]) -> tuple[list[str], str | None]:
    """(providers in priority order, a one-line notice or None) for device cpu|cuda|auto."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "cpu":
        return [CPU], None
    if CUDA in available:
        return [CUDA, CPU], None
    if device == "auto":
        return [CPU], "notice: CUDA is not available to onnxruntime; tagging on CPU"
    raise DeviceError(
        "device 'cuda' asked for, but this onnxruntime has no CUDAExecutionProvider "
        f"(it has: {', '.join(available) or 'none'}). Install the GPU build in its place: "
        "pip uninstall -y onnxruntime && pip install -r requirements-gpu.txt "
        "(needs an NVIDIA driver, CUDA 12 and cuDNN 9)")
