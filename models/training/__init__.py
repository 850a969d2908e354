"""Training with PyTorch: model and training configs, the SASRec-style model, dataset
loaders, time splits of a click stream, the training loop and warm-started retraining,
evaluation and metrics, ONNX export, publishing to the registry, and the small bootstrap
model the demo trains when the registry is empty.

May import: `models.serving`, `models.core`.
"""

from reckon.models.training.memory import ask_for_huge_pages

ask_for_huge_pages()   # before anything here imports torch: models/training/memory.py
