"""Reading HTML pages in tests: a table's cells, its links; a page opened in headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from medallion.lakehouse.settings import repo_root

CHROMIUM = "chromium"  # Debian's package; `make test` installs it
ARTIFACTS_ENV = "MEDALLION_TEST_ARTIFACTS"


class Cells(HTMLParser):
    """The text of each row of the table with ``id``, and every link's href."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.inside = table_id, False
        self.rows: list[list[str]] = []
        self.hrefs: list[str] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            self.inside = found.get("id") == self.table_id
        elif self.inside and tag == "tr":
            self.row = []
        elif self.inside and tag in {"td", "th"}:
            self.cell = []
        elif self.inside and tag == "a" and found.get("href"):
            self.hrefs.append(str(found["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in {"td", "th"} and self.row is not None and self.cell is not None:
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif self.inside and tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def cells(page: str, table_id: str) -> Cells:
    parser = Cells(table_id)
    parser.feed(page)
    return parser


def browser(page: Path, user_data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``page`` (a file) with ``args``, e.g. ``--dump-dom``."""
    found = shutil.which(CHROMIUM)
    assert found, f"{CHROMIUM} is not installed: `make test` installs Debian's package"
    return subprocess.run(
        [found, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={user_data}", *args, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )


def artifacts_dir() -> Path:
    """Where tests keep what a person may want to look at after a run (screenshots): the
    ``MEDALLION_TEST_ARTIFACTS`` folder, else ``.cache/test-artifacts`` (not in the repo)."""
    folder = Path(os.environ.get(ARTIFACTS_ENV) or repo_root() / ".cache" / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
