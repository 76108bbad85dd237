"""Feature-space remedies for class imbalance, applied to a trained run's embeddings:
over-sampling in FE space (:mod:`.oversampling`: EOS and its baselines), fresh linear heads
(:mod:`.retraining`: cRT, and the over-sampling remedies' head), post-hoc adjustments of the
run's own classifier (:mod:`.posthoc`), and applying one and evaluating it
(:mod:`.registry`). Which remedies exist and the function that fits each is declared in
:data:`fragility.catalog.remedies.REMEDIES`."""
