"""The DVC pipeline: one module per stage (ingest, validate, split, train, evaluate, report),
named as the stage. Imports only core."""
