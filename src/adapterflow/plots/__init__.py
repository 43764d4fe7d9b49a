"""Figures of the evaluation: per-task bars, a run-group × task heatmap, per-item distributions."""
