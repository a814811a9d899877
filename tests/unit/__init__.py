"""Unit tests, laid out like the source: tests/unit/<package>/test_<module>.py."""
