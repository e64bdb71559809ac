"""`export_site`: the page as static files (index.html, a page per submission and episode)."""

from __future__ import annotations

from pathlib import Path

from agentbench.leaderboard.page import Links, render_detail, render_episode, render_index
from agentbench.leaderboard.service import Leaderboard, NotFound


def export_site(service: Leaderboard, out: Path) -> int:
    """Write the page of every visible accepted submission under `out`; files written."""
    out.mkdir(parents=True, exist_ok=True)
    rows = service.rows()
    (out / "index.html").write_text(render_index(rows, Links(static=True, prefix="")))
    written = 1
    for sub_id in sorted({r["submission_id"] for r in rows}):
        try:
            detail = service.detail(sub_id)
        except NotFound:
            continue
        sub_dir = out / "submissions"
        sub_dir.mkdir(exist_ok=True)
        (sub_dir / f"{sub_id}.html").write_text(render_detail(detail, Links(True, "../")))
        written += 1
        for stage in detail["stages"]:
            key = stage["stage_key"]
            folder = sub_dir / str(sub_id) / key
            folder.mkdir(parents=True, exist_ok=True)
            for i, episode in enumerate(service.episodes(sub_id, key)):
                page = render_episode(sub_id, key, i, episode, Links(True, "../../../"))
                (folder / f"{i}.html").write_text(page)
                written += 1
    return written
