"""The training loop's parts: sampling, weighting, schedule, phases, optimizer, precision, budget and evaluation."""
