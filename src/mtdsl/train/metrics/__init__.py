"""Evaluation metrics per task kind."""
