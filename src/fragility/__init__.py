"""fragility: why CNNs trained on class-imbalanced images fail on minority classes.

Each pipeline stage is a plain function in its own module (``data``, ``splits``,
``models``, ``losses``, ``training``, ...); the Snakemake workflow only calls them.
"""

__version__ = "0.1.0"
