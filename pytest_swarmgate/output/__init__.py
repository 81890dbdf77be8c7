"""The formats: escaping per channel, terminal text, JSON, SARIF, GitHub, calibration tables and plot. No pytest."""
