"""What training and serving share: the error hierarchy, query-term hashing, and the
model registry (versioned directories with manifests and checksums), and how dollars are
written for people.

May import: nothing of Reckon.
"""
