"""Countersign: a multi-stage approval engine service."""

__version__ = "0.1.0"
