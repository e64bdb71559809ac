"""The leaderboard: a FastAPI app over a SQL database (SQLAlchemy 2, Alembic) that takes result
bundles, verifies them in a background worker and shows the accepted ones on a page.

    agentbench leaderboard add-user alice            # prints alice's token once
    agentbench leaderboard serve --db sqlite:///lb.db
    agentbench submit smoke.bundle.tar.gz --server http://127.0.0.1:8765
    agentbench leaderboard export-site site/
"""
