"""The smallest paired difference that matters, per headline metric, stated before the runs.

A contrast (cmi - mi, cmi - elbo) of a metric named here gets one decision in the tables
(``paperlib.stats.decide_contrasts``): "better" or "worse" (the paired difference differs from 0
after Holm's correction over the table's contrasts), "equivalent" (the difference lies within
+-margin by two one-sided tests, Holm-corrected too) or "inconclusive". docs/DESIGN.md,
"Decisions", gives the reasoning; a metric not named here gets an interval but no decision.

metric -> (margin, direction): direction +1 when higher is better, -1 when lower is better.
"""

MARGINS: dict[str, tuple[float, int]] = {
    # accuracy of a linear or k-NN read-out of the global factor from z (speaker, class, 05's
    # g): 3 points is about the
    # seed-to-seed sd of the quick runs' probes (0.01-0.04) and a tenth of the gap between
    # chance and the raw-input probe on speech
    "probe_acc": (0.03, +1),
    "probe_acc_sample": (0.03, +1),
    "probe_acc_knn": (0.03, +1),
    # speaker-verification equal error rate: 2 points
    "eer": (0.02, -1),
    # consistency of generated samples with z (a classifier's agreement): 3 points, as a probe
    "vc_speaker_acc": (0.03, +1),
    "class_consistency": (0.03, +1),
    # I(z; s), the quantity cmi lowers, on the penalty's target: a tenth of a nat, about the
    # planted-MI qualification's error at 0.5 nats (DESIGN, "Instrument")
    "mi_zs_target_nats": (0.10, -1),
}

#: the family-wise error rate of one table's decisions (Holm over its contrasts)
FAMILY_ALPHA = 0.05
