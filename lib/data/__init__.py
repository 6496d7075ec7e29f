"""Datasets: registry of real data with checksums, real-data readers, synthetic generators."""
