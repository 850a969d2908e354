"""Training with PyTorch: model and training configs, the SASRec-style model, dataset
loaders, the training loop, evaluation and metrics, ONNX export, publishing to the
registry, and the small bootstrap model the demo trains when the registry is empty.

May import: `models.serving`, `models.core`.
"""
