"""The Kubernetes manifests offline: validators, cross-references (xref.py), the shutdown budget."""
