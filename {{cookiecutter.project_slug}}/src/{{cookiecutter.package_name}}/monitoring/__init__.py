"""Monitoring: drift of a batch against the training data, scored with the served model."""
