"""Training the ``learned`` scorer and writing every shipped routing artifact.

    python -m orchestrator.routing.train --data ../shared/data/routing

writes, under ``orchestrator/routing/models/``:

    learned.json      the two fitted models, the split, development figures
    held_in.txt       keys of every prompt used to fit or tune a shipped scorer
    calibration.json  each scorer's score quantiles on the training prompts

Needs the ``learned`` extra (numpy, scikit-learn). The split is in ``split.py``.

The tier classifier has its own entry point (``tiers.py``):

    python -m orchestrator.routing.train.tiers      corpus/*.jsonl -> models/tiers.json

with ``tier_data.py`` (reading, held-out split, weights), ``tier_fit.py`` (the
fit) and ``from_jobs.py`` (labelled prompts from a cluster's own jobs).
"""
