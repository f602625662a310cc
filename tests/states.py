"""Test helpers over both state formats: the integers a state holds, and putting a state back to them."""

from __future__ import annotations

import torch


def held_integers(state) -> torch.Tensor:
    """The exact integers of the global state: the wide delta or the compact q."""
    return (state.q if state.format == "compact" else state.delta).clone()


def reset_to(state, integers: torch.Tensor, room) -> None:
    """Back to integers captured by held_integers (and the room captured by state.room())."""
    state.restore()
    (state.q if state.format == "compact" else state.delta).copy_(integers)
    state.set_room(room)
    state.restore()
