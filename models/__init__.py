"""Reckon's sequence model: train, evaluate, export to ONNX, register and serve.

Layers, each importing only those below it::

    cli        reckon train / eval / export / model ...
    training   configs, the model, data loaders, training, evaluation, export (torch)
    serving    ONNX Runtime sessions, the scorer, cost per 1k scores (no torch)
    core       errors, query terms, the registry

Importing ``reckon.models`` itself stays cheap (no torch, no onnxruntime).
"""
