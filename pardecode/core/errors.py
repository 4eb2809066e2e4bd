"""Errors pardecode raises on purpose: each names the bad value and what is allowed."""


class PardecodeError(Exception):
    """Base class of every error pardecode raises on purpose."""


class ConfigError(PardecodeError, ValueError):
    """A configuration value is out of range or of the wrong kind."""


class UnknownNameError(PardecodeError, KeyError):
    """A strategy or backbone name that no plugin registered."""

    def __init__(self, kind: str, name: str, known: list[str], note: str = ""):
        self.kind, self.name, self.known = kind, name, sorted(known)
        plural = kind[:-1] + "ies" if kind.endswith("y") else kind + "s"
        message = f"unknown {kind} {name!r}; known {plural}: {', '.join(self.known) or '(none)'}"
        super().__init__(message + (f" ({note})" if note else ""))

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class BackboneError(PardecodeError, RuntimeError):
    """A backbone produced output that decoding cannot use (NaN logits, wrong shape, ...)."""


class CheckpointError(PardecodeError, ValueError):
    """A checkpoint directory is missing, unreadable or of another model family."""
