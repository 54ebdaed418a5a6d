"""Core: the values every stage shares (params, the data contract, features, the model and
metric catalogues, artifacts, the one reader of a data source). Imports nothing above it."""
