"""Serving without torch: ONNX Runtime sessions and providers, the scorer that ranks
candidates for a batch of histories (and holds the item table cold start extends), the
cold-start estimate, and the measured cost per 1,000 scores.

May import: `models.core`.
"""
