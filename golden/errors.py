"""The one exception type for user errors; the CLI turns it into one clear line on stderr."""


class MlsnnError(Exception):
    """A user error: bad input, bad option, unsupported configuration.

    The message is one self-contained sentence that names the offending item.
    """
