"""Formats and escaping: terminal, JSON, SARIF, GitHub, calibration text and plot."""
