"""The data: flow geometry, synthetic pairs with exact ground truth, facades, the training pool.

Imports nothing from :mod:`gocor.lab.models` or :mod:`gocor.lab.runs`."""
