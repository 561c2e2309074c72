"""Predictors: one folder per function, plus the shared runtime they run on."""
