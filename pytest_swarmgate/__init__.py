"""pytest-swarmgate: a K-of-N panel of LLM reviewers as a pytest gate."""

__version__ = "0.1.0"
