"""Inference after the fit: BLUPs with conditional variances, prediction, simulation and
the parametric bootstrap, intervals, model comparison, tests of variance components, and
denominator degrees of freedom.  Each module contributes a mixin to
:class:`~sparsemixed.results.LmerResult` or a function of fitted results."""
