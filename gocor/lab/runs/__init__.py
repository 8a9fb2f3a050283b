"""The runs: training, evaluation, checkpoints, the ablation, its analysis and report, the volume
experiment. The top of the lab: imports :mod:`gocor.lab.data` and :mod:`gocor.lab.models`."""
