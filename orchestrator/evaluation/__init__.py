"""Offline evaluation of routing: strong/weak scorers (APGR, CPT) and the tier classifier.

data.py     input formats (JSONL, RouteLLM's CSV, MT-Bench), exclusion lists
metrics.py  the quality curve, APGR and CPT, computed exactly
router.py   ``switchyard eval router``: scorers and baselines in one run
tiers.py    ``switchyard eval tiers``: accuracy, macro-F1, confusion, image check
plot.py     the curve as a PNG (optional ``plot`` extra)
"""
