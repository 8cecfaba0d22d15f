"""Theory figures: one module per figure/claim, run by ``python -m theory figures`` (from a checkout).

This package is not part of the wheel: it runs from the repository and imports ``refreg``, never the reverse.
``theory.runner`` runs and caches the sweeps, ``theory.cli`` is the command line.

Every module ``theory/<name>.py`` is a pure script over refreg's public API and defines

- ``NAME`` (str), ``DESCRIPTION`` (one line: what the figure shows), ``QUICK_SECONDS`` (the quick
  preset's pool time, the sum of its runs' wall times in the 2-worker pool, about its core-seconds: on 2 cores
  the wall time is about half);
- ``PRESETS``: ``{"tiny": {...}, "quick": {...}, "full": {...}}``, JSON-able dicts (``tiny`` is for tests, seconds;
  ``quick`` is the default, embedded data only; ``full`` the papers' scale, which may read ``preset["mnist"]``);
- ``configs(preset, seeds) -> list``: one config per independent run (seeds x hyperparameters x methods), a
  frozen dataclass (or a JSON-able dict) with a ``seed`` field; a config holds everything its run depends on;
- ``run(config) -> dict``: one run, deterministic given its config, JSON-able result, no files written (it is
  sent to a process pool or a Dask worker and cached by a hash of the whole config, ``runner.cache_key``);
- ``report(preset, results, outdir) -> dict``: draws ``<name>.png`` and ``<name>.svg`` and writes the numbers
  plotted to ``<name>.csv`` (and/or ``.json``) in ``outdir``; returns ``{"files": [...], "rows": [...]}`` where each
  row is ``{"figure", "claim", "paper", "measured"}`` for ``figures/summary.md``;
- ``main(outdir="figures", preset="quick", seeds=None)``: the same, sequentially, without the runner.
"""

FIGURES = (
    "equivalence",
    "prox_geometry",
    "cpr_constraint",
    "cpr_grokking",
    "grokking_transformer",
    "pathprox_convergence",
    "sparse_tradeoff",
)
