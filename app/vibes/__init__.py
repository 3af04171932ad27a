"""The sample Vibes app: users, journals and tags, served by FastAPI."""

__version__ = "1.0.0"
