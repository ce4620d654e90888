"""Run capture: code, environment, git commit, process ownership and data fingerprints."""
