"""Workspaces in the upstream layout, written from code: for tests, the demo and bench/."""
