"""Tracks: published suite versions a bundle is held to (`BundleConfig.track`).

A track fixes the rules that make entries comparable: the held-out split only, the task
specs this agentbench publishes (their hashes), a minimum of scored episodes per arm and of
seeds, ceilings on the step and time limits an episode ran under, and the keyword list the
leak check re-runs with on included student data. `open` has no rules beyond verification.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Track(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    split: str | None = "heldout"
    """The only split evaluation episodes may come from (None: any)."""
    published_specs: bool = True
    """Task-spec hashes must equal those of the specs this agentbench ships."""
    min_episodes: int = 0
    """Scored episodes per arm, at least."""
    min_seeds: int = 1
    max_steps: int | None = None
    """Highest per-episode step limit allowed (None: no ceiling)."""
    max_command_timeout_s: float | None = 20.0
    """Highest per-command time limit the sandbox may have run with."""
    extra_terms: tuple[str, ...] = ()
    """Keywords the leak check adds to the trait's default list."""


TRACKS: dict[str, Track] = {
    t.name: t
    for t in (
        Track(
            name="open",
            description="any run; verified, no comparability rules",
            split=None,
            published_specs=False,
            max_command_timeout_s=None,
        ),
        Track(
            name="micro-v1",
            description="pipeline-size runs (tests, smoke): held-out "
            "probes, published specs, >= 3 episodes per arm, <= 3 steps",
            min_episodes=3,
            max_steps=3,
        ),
        Track(
            name="smoke-v1",
            description="suites/smoke.yaml scale: held-out probes, "
            "published specs, >= 20 episodes per arm, <= 12 steps",
            min_episodes=20,
            max_steps=12,
        ),
        Track(
            name="paper-lite-v1",
            description="paper-lite scale: >= 100 episodes per arm, >= 2 seeds, <= 12 steps",
            min_episodes=100,
            min_seeds=2,
            max_steps=12,
        ),
    )
}


def get_track(name: str) -> Track:
    """The track named `name`; ValueError listing the known ones otherwise."""
    try:
        return TRACKS[name]
    except KeyError:
        raise ValueError(f"unknown track {name!r}; known: {', '.join(sorted(TRACKS))}") from None
