"""Reckon's sequence model: train, evaluate, export to ONNX, register and serve.

Public entry points live in their modules (``models.registry``, ``models.scorer``,
``models.bootstrap``, ...); importing ``models`` itself stays cheap (no torch).
"""
