"""Feature-space remedies for class imbalance: EOS and its baselines, applied to a trained
run's embeddings."""
