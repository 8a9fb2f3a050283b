"""The models: the matcher, the capacity-matched volume post-processing, channel norms.

Imports :mod:`gocor.lab.data.flow` (flow geometry) and the layer; nothing from :mod:`gocor.lab.runs`."""
