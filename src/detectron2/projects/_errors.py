"""Errors of the projects. Upstream checks these conditions with ``assert``: the class
derives from AssertionError too, so code that caught upstream's error still does."""

__all__ = ["ProjectConfigError"]


class ProjectConfigError(ValueError, AssertionError):
    """A config value or argument a project cannot work with; the message names it."""
