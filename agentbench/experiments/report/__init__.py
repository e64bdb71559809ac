"""Experiment reports: `report.md`, a self-contained `report.html` and PNG plots from a run's
`results.json` (`agentbench report RUN_DIR` rebuilds them).

Both documents are rendered from one list of blocks (headings, paragraphs, tables, images), so
they say the same thing. Every string that comes from results.json (ids, configs, arm names,
episode ids) is untrusted: it is escaped for markdown and with `html.escape` for HTML, and the
numbers are validated before they are formatted. The HTML has no external references: inline
CSS, plots as base64 data URIs.

Every comparison carries its minimum detectable difference and the power it had to see the
teacher's own gap; contrasts against the null-teacher student and the base are named with what
they test; homogeneous minus heterogeneous splits subliminal from semantic transfer; seeds are
pooled by a Cochran-Mantel-Haenszel test; suites with a dose axis get a dose-response plot.

What the report claims follows the statistics: "transfer found" only when the treated student
differs from the control student with Fisher p < 0.05, a 95 % interval of the difference
(Newcombe, statsmodels) that excludes 0, and in the direction of the teacher's trait; otherwise
it says "no significant difference" with the numbers. Rendering is deterministic: the same
results.json gives byte-identical files.

Errors: `ReportError` (a `ValueError`) names the file and field of bad input.

The package, one concern per module (each imports only those before it in this list):
`checked` (the validated view of results.json and `ReportError`), `document` (the blocks),
`render` (markdown and HTML), `comparisons` (differences, p-values, MDE, power), `dose` (the
dose axis), `plots`, `wording` (how to read it, the claims), `cell_section` (one cell),
`compose` (the whole document) and `writer` (read results.json, write the files).
"""

from agentbench.experiments.report.cell_section import MAX_LISTED
from agentbench.experiments.report.checked import LABELS, RATE_COLUMNS, ReportError
from agentbench.experiments.report.comparisons import ALPHA
from agentbench.experiments.report.compose import build_blocks
from agentbench.experiments.report.document import (
    Block,
    Bullets,
    Code,
    Heading,
    Image,
    Inline,
    Para,
    Table,
    Text,
    Untrusted,
)
from agentbench.experiments.report.dose import DOSE_ARMS, dose_traits
from agentbench.experiments.report.plots import plot_dose, plot_homo_hetero, plot_trait
from agentbench.experiments.report.render import render_html, render_markdown
from agentbench.experiments.report.wording import CONTRAST_MEANING, CONTROL_TEACHER, HOW_TO_READ
from agentbench.experiments.report.writer import load_results, rebuild_report, write_report

__all__ = [
    "ALPHA",
    "CONTRAST_MEANING",
    "CONTROL_TEACHER",
    "DOSE_ARMS",
    "HOW_TO_READ",
    "LABELS",
    "MAX_LISTED",
    "RATE_COLUMNS",
    "Block",
    "Bullets",
    "Code",
    "Heading",
    "Image",
    "Inline",
    "Para",
    "ReportError",
    "Table",
    "Text",
    "Untrusted",
    "build_blocks",
    "dose_traits",
    "load_results",
    "plot_dose",
    "plot_homo_hetero",
    "plot_trait",
    "rebuild_report",
    "render_html",
    "render_markdown",
    "write_report",
]
