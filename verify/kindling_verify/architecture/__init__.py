"""The service's module graph: no two modules of src/ import each other."""
