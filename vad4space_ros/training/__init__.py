"""Fitting: the Lightning loop on CPU, normal-only calibration, robust screening."""
