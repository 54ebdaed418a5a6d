"""Promotion: the gate stage and its checks, the preconditions of a promotion, the MLflow store
(tracking and registry) and the promote commands. Imports pipeline and core."""
