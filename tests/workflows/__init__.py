"""Tests of vidlens.workflows: action recognition end to end through the Python API."""
