"""Bolt listeners, one module per kind: parse, call core, render."""
