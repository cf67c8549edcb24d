"""Maskers: how coalitions and perturbations of an input's segments become model inputs,
one module per input kind (``explainers.interface.Masker`` is the protocol)."""
