"""The study's figures, one module per family, in one house style (:mod:`.style`):

* :mod:`.run_figures` -- the paper's per-run figures (:func:`plot_figure`);
* :mod:`.cross_run` -- figures over the study's runs (:func:`plot_cross_run`);
* :mod:`.remedies` -- test BAC against cost of every remedy (:func:`plot_remedy_costs`);
* :mod:`.curves` -- fragility curves against the imbalance ratio (``plot_curve_figure``);
* :mod:`.dynamics` -- the lecture's training-progress figures (per run and cross-run).

Which figures exist, what they read and their captions is declared once in
:mod:`fragility.catalog`; :data:`RUN_PLOTS` and :data:`CROSS_RUN_PLOTS` key the plot functions
by the same names. Importing this package does not import matplotlib: that happens when the
first figure is drawn.
"""

from fragility.plotting.cross_run import CROSS_RUN_PLOTS, plot_cross_run
from fragility.plotting.remedies import plot_remedy_costs
from fragility.plotting.run_figures import RUN_PLOTS, plot_figure

__all__ = ["CROSS_RUN_PLOTS", "RUN_PLOTS", "plot_cross_run", "plot_figure", "plot_remedy_costs"]
