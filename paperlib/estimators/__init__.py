"""Mutual-information estimators and density-ratio critics, and the instrument that qualifies them.

``mi``: estimators of I(a; b) and KL for the evaluation; ``critics``: the critics the objectives
train (I(z; s) for cmi, KL(q(z) || p(z))); ``instrument``: fitting a critic as a measurement,
with its second family and the planted-MI qualification.
"""
