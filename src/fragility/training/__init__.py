"""Training: the CNNs (:mod:`.models`), their losses (:mod:`.losses`), Major Feature
Weakening (:mod:`.mfw`), what determines a trained model (:mod:`.settings`, importable
without torch), the engine (:mod:`.engine`), its checkpoints and numeric precision, linear
heads fitted on fixed features (:mod:`.heads`), and which GPU a job computes on
(:mod:`.gpus`)."""
