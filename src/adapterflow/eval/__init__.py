"""Evaluation: encode texts with a base model or adapter, search, score tasks."""
