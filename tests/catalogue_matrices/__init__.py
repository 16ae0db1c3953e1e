"""One module per catalogue tag: its :class:`catalogue_matrix.Matrix` (scenarios, defect -> scenarios it fails)."""
