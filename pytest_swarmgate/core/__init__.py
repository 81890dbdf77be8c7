"""The review without pytest: data model, diff, prompt, voters, consensus, engine, cache, calibration scoring."""
