"""Project-wide exception types."""


class UserError(Exception):
    """A problem with the user's input (bad flag, missing file, malformed row, config typo).

    The CLI prints it without a traceback and exits with status 2, so the message must name the
    problem and the fix, e.g. "dataset 'math50' is not registered; did you mean 'math500'?".
    Subclasses ValueError semantics loosely; library callers may catch it like any exception.
    """


def closest(name: str, choices) -> str:
    """' Did you mean X?' suffix for an unknown name, or '' when nothing is close."""
    import difflib

    m = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"; did you mean '{m[0]}'?" if m else ""
