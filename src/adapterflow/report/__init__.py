"""Evaluation JSON → tidy metrics table and a per-run-group summary with confidence intervals."""
