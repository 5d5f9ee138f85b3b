"""The one error type of the data layer, so callers need not know its modules."""


class DataError(Exception):
    """The input cannot be read as specified (missing path, bad records, HDFS down)."""


class NotFoundError(DataError):
    """A path that the job names does not exist."""
