"""An offline Stripe for tests and demos, speaking API version 2026-10-28.endive.

No Django here: the portal talks to it over HTTP exactly as it talks to Stripe."""

from .state import API_VERSION

__all__ = ["API_VERSION", "Emulator"]


def __getattr__(name: str) -> object:
    # Imported lazily so ``python -m stripe_emulator`` does not import the app twice.
    if name == "Emulator":
        from .app import Emulator

        return Emulator
    raise AttributeError(name)
