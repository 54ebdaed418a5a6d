"""Serving: the exported bundle, the scorer and its numpy fast path, the BentoML service and
batch scoring (`predict`). Imports promotion (to export a registered model), pipeline and core."""
