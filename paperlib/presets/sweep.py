"""Notebook 03's sweep of weights over speech and images, and the seeds that 01 and 02 report on.

Notebook 03 trains `mi` per alpha and `cmi` per (alpha, beta) on `SELECTION_SEEDS` and chooses
the weights on the validation split; notebooks 01 and 02 train with those weights on
`REPORTED_SEEDS`, disjoint from them, so that no reported run chose its own weights (DESIGN
section 2). Each dict maps a profile to what the notebooks' parameters set to None resolve to
(``paperlib.suite.params``).
"""

#: notebook 03's seeds: at least two seeds for every weight setting (one seed's ranking is noise)
SELECTION_SEEDS = {"smoke": [0], "quick": [0, 1], "paper": [0, 1, 2]}

#: notebook 03's grid of alpha, the weight of I(x;z)
ALPHAS = {"smoke": [2.0], "quick": [1.0, 3.0], "paper": [0.5, 1.0, 2.0, 5.0]}

#: notebook 03's grid of beta, the weight of I(z;s); "tied" is cmi at beta = alpha
#: (ELBO + alpha I(x;z|s)). Tied in the quick profile: the paper's objective, and half the runs
#: of a grid
BETAS = {"smoke": "tied", "quick": "tied", "paper": [0.5, 1.0, 2.0, 4.0, 8.0]}

#: how many times notebook 03 widens its grid where a choice lies on the grid's edge
#: (`selection.widening`: the next weight outward, trained on the same seeds, then the choice
#: is made again). Smoke runs one round, to exercise the path (its one-value grid has no edge).
#: Quick runs none and prints the edge instead: its choices sit on the lower edge (alpha =
#: beta = 1 of {1, 3}), and one round on 2 CPU cores adds about two hours (mi and cmi at 1/3 on
#: both models and 2 seeds, an images cmi run about 30 minutes at one thread).
WIDEN_ROUNDS = {"smoke": 1, "quick": 0, "paper": 2}

#: seeds of the reported runs of notebooks 01 and 02: none of them is one that notebook 03
#: selects the weights on (``paperlib.suite.plan.check_run`` refuses an overlap before a run starts)
REPORTED_SEEDS = {"smoke": [100], "quick": [100, 101, 102], "paper": [100, 101, 102, 103, 104]}

#: notebook 01's seeds: five in the quick profile too, the fewest a claim rests on (a quick
#: speech run trains in about 5 minutes at one thread; an images run takes 3-6x that, so
#: notebook 02 keeps `REPORTED_SEEDS`)
SPEECH_REPORTED_SEEDS = {**REPORTED_SEEDS, "quick": [100, 101, 102, 103, 104]}
