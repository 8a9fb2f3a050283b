"""The lab around the layer, in three layers that import only downwards:

- :mod:`gocor.lab.data`: flow geometry, synthetic pairs with exact ground truth (pictures, warps,
  named splits), near-repetitive facades, the training pool;
- :mod:`gocor.lab.models`: the matcher, the capacity-matched volume post-processing, channel
  norms, optimizer parameter groups;
- :mod:`gocor.lab.runs`: training, metrics and evaluation, checkpoints, the named variants, the
  ablation, its analysis and report, the volume experiment.

Beside them, used by all three: :mod:`.device` (default device, batched inference),
:mod:`.files` (atomic writes), :mod:`.errors` (the one user-error type).
"""
