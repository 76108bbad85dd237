"""fragility: why CNNs trained on class-imbalanced images fail on minority classes.

The sub-packages follow the data: :mod:`.catalog` (every file, output, claim and remedy,
declared once), :mod:`.data` (datasets and splits), :mod:`.training` (models, losses, the
engine), :mod:`.embeddings` (the hand-off to the analyses), :mod:`.analysis` (the research
questions, the claims), :mod:`.remedies`, :mod:`.plotting` and :mod:`.workflow` (the study,
its stages and jobs); each imports only those before it. Every stage is a plain function the
Snakemake workflow calls, and a command of ``python -m fragility``.
"""

__version__ = "0.1.0"
