"""Errors that carry one clear message for the user (no stack trace needed)."""


class FragilityError(Exception):
    """Base class: the message alone tells the user what went wrong and what to do."""


class ConfigError(FragilityError):
    """A configuration value is malformed or names something unknown."""


class DatasetNotFound(FragilityError):
    """A dataset's files are missing; the message says where we looked and how to get it."""


class TrainingDiverged(FragilityError):
    """The loss became non-finite; the last good checkpoint is kept."""
