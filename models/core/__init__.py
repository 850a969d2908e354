"""What training and serving share: the error hierarchy, query-term hashing, and the
model registry (versioned directories with manifests and checksums).

May import: nothing of Reckon.
"""
