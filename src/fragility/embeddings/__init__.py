"""Embeddings: the Parquet hand-off from a trained model to the analyses. Extraction from
our own checkpoints (:mod:`.extraction`) and from models trained elsewhere
(:mod:`.external`)."""
