"""The study's figures, one module per family, in one house style (:mod:`.style`):

* :mod:`.run_figures` -- the paper's per-run figures (:func:`~.run_figures.plot_figure`);
* :mod:`.cross_run` -- figures over the study's runs (:func:`~.cross_run.plot_cross_run`);
* :mod:`.remedies` -- test BAC against cost of every remedy
  (:func:`~.remedies.plot_remedy_costs`);
* :mod:`.curves` -- fragility curves against the imbalance ratio
  (:func:`~.curves.plot_curve_figure`);
* :mod:`.dynamics` -- the lecture's training-progress figures (per run and cross-run).

Which figures exist, what they read, their captions and the function that draws each is
declared once, in :mod:`fragility.catalog.outputs`. Importing this package does not import
matplotlib: that happens when the first figure is drawn.
"""
