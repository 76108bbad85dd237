"""The pipeline's stages as file-in, file-out functions, one module per step in the order data
flows: :mod:`.data`, :mod:`.training`, :mod:`.embeddings`, :mod:`.heads` (RQ1's re-trained
classifier and the remedies), :mod:`.analysis`, :mod:`.curves` and :mod:`.figures`.

The workflow's scripts call them and ``python -m fragility`` makes each a command. Every
stage takes the files it reads first and then ``outputs``, the paths it writes: a list, or
one path alone, each file known by its name (``metrics.json``, ``table2.csv``, ...).
"""
