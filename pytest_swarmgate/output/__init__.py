"""The formats of a review: escaping per channel, terminal text, JSON, SARIF, GitHub outputs. No pytest."""
