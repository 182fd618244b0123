"""Exceptions of the engine; each message names the bad value and what is accepted."""


class EngineError(Exception):
    """Base class for engine errors."""


class FrameDataError(EngineError, ValueError):
    """An array that cannot be used as a stack of frames (shape, dtype, axis)."""


class PromptError(EngineError, ValueError):
    """A prompt (points, box, mask, frame index or object id) that does not fit the session."""


class PropagationError(EngineError, ValueError):
    """A propagate call that cannot run (no prompts, bad direction or range)."""


class BankError(EngineError, ValueError):
    """A memory bank file or entry that cannot be used (format, version, model mismatch)."""


class BankFileNotFoundError(BankError, FileNotFoundError):
    """A bank path that does not exist or is not a file."""


class UnsafeBankError(BankError):
    """A bank file whose pickle would run code or build objects other than tensors."""


class NoPromptError(PropagationError, RuntimeError):
    """A propagate call on a session with no prompted object yet (a state, not a bad value)."""


class SessionBusyError(EngineError, RuntimeError):
    """A call that changes a session while one of its propagations is running.

    A session has one writer at a time: prompts, corrections, removals, resets and a second
    propagation wait until the running propagation ends (or is stopped).
    """
