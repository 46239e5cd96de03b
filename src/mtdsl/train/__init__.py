"""Training: data, sampling, weighting, the loop, metrics and reports."""
