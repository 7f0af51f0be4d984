"""Workflows both front ends offer (external evaluation, calibration): composed
here once; the command line and the window only call them and present their results."""
