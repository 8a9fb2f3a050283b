"""The lab around the layer: synthetic data, flow geometry, the matcher, training, evaluation."""
