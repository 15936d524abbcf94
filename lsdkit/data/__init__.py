"""Data layer: sequence files, the pre-training corpus, source registry and probe tasks."""
