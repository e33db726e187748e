"""Experiments built from training and evaluation: one run, a comparison of objectives and a
sweep (``experiment``), weight selection (``selection``), floors and ceilings (``references``),
the controlled study of notebook 05 (``mechanism``) and the component listing (``components``)."""
