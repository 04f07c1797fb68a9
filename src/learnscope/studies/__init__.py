"""Studies: one module per phenomenon studied around trained runs. A new phenomenon goes here.

- :mod:`~learnscope.studies.coord`: the coordinate check across widths (a sweep spec);
- :mod:`~learnscope.studies.transfer`: linear-probe transfer of a run's representations;
- :mod:`~learnscope.studies.evaluation`: fresh-instance evaluation, stored as a run;
- :mod:`~learnscope.studies.model_collapse`: replacing vs accumulating generated data;
- :mod:`~learnscope.studies.capacity`: effective model complexity (the largest set fitted);
- :mod:`~learnscope.studies.criticality`: the mean-field scan of random networks;
- :mod:`~learnscope.studies.entropy`: accuracy estimated by entropy minimisation;
- :mod:`~learnscope.studies.layer_pruning`: removing layers, healing as a run;
- :mod:`~learnscope.studies.memorization`: pruning the neurons that memorise;
- :mod:`~learnscope.studies.spectrum`: the Fourier spectrum of a modular run's first layer;
- :mod:`~learnscope.studies.gen_measures`: generalisation measures, their Kendall tau in a sweep;
- :mod:`~learnscope.studies.hessian`: the Hessian's top eigenvalues, outliers and density.

The rules (``tests/test_architecture.py`` checks them): a study trains only through
:mod:`learnscope.runner` (a run) or :mod:`learnscope.sweep` (a spec run by its backends), never
with a trainer of its own; it writes to the store only through the runner and the sweep
backends (which take the run lock), never with the store's write calls; it returns values, and
its command in ``cli/`` parses the arguments and prints them. Nothing below (tasks, models,
probes, train, interventions, store, runner, sweep) imports a study.
"""
