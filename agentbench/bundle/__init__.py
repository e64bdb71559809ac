"""Verifiable result bundles: write one from a run (`build_bundle`), check one
(`verify_bundle`: schema, manifest, recompute, replay, track rules).

    agentbench bundle runs/smoke -o smoke.bundle.tar.gz --submitter alice
    agentbench verify smoke.bundle.tar.gz --replay-fraction 0.2
"""

from __future__ import annotations

from agentbench.bundle.archive import DEFAULT_LIMITS, BundleError, Limits, read_archive
from agentbench.bundle.schema import BundleConfig, BundleMetadata, Manifest, bundle_json_schema
from agentbench.bundle.tracks import TRACKS, Track, get_track
from agentbench.bundle.verify import VerifyReport, verify_bundle
from agentbench.bundle.writer import build_bundle

__all__ = [
    "DEFAULT_LIMITS",
    "TRACKS",
    "BundleConfig",
    "BundleError",
    "BundleMetadata",
    "Limits",
    "Manifest",
    "Track",
    "VerifyReport",
    "build_bundle",
    "bundle_json_schema",
    "get_track",
    "read_archive",
    "verify_bundle",
]
