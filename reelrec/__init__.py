"""reelrec: batch recommendations for short-video feeds (the shared core of every stage)."""

__version__ = "0.1.0"
