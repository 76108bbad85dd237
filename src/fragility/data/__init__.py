"""Data: raw images in, the canonical ``.npz`` of a dataset (:mod:`.datasets`) and the
seeded imbalanced splits drawn from it (:mod:`.splits`)."""
