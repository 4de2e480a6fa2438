"""Scoring against ground truth: simulated scenarios, real face photos, clinical data, the lab battery and the report."""
