"""Teaching helpers for the notebooks: plots, the volume explorer, the hand-made ambiguous pair."""
