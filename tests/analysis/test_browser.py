"""The report as a person sees it: rendered by headless Chromium at 1,400 x 900 px.

Checks what a reader would: the Findings heading is on the first screen, the page does not scroll
sideways, every image loads, and a screenshot renders. The page is measured by a script added to a
copy of it, which writes its measurements into the DOM that ``--dump-dom`` prints (offline: the
report embeds its images). Without Chromium the test is skipped, except in CI (CI=true), where
``.ci/run`` installs it and a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from analysis import SyntheticSpec, write_report, write_synthetic_results

WIDTH, HEIGHT = 1400, 900
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         f"--window-size={WIDTH},{HEIGHT}"]
PROBE = """<script>
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var findings = document.getElementById('findings');
  var out = {innerWidth: window.innerWidth, innerHeight: window.innerHeight,
             scrollWidth: document.documentElement.scrollWidth, images: images.length,
             broken: images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length,
             findingsTop: findings ? findings.getBoundingClientRect().top : null};
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed, but CI must run the browser test (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it in CI)")
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A 10-class report with a wide class table (7 noise levels x 5 sizes, 3 seeds)."""
    out = write_synthetic_results(tmp_path_factory.mktemp("res"), SyntheticSpec(n_seeds=3))
    return write_report(out, n_boot=200, progress=None)


def _run(chromium: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: nothing from an earlier run
        return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=180)


def test_page_in_a_real_browser(chromium, report):
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = _run(chromium, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout)
    assert found, f"no measurements from chromium (exit {done.returncode}): {done.stderr[-800:]}"
    seen = json.loads(found.group(1))
    assert seen["innerWidth"] == WIDTH
    assert seen["scrollWidth"] <= seen["innerWidth"], f"the page scrolls sideways: {seen}"
    assert seen["images"] >= 9 and seen["broken"] == 0, seen
    assert seen["findingsTop"] is not None and 0 <= seen["findingsTop"] < seen["innerHeight"], seen


def test_screenshot_of_the_first_screen(chromium, report, tmp_path):
    from PIL import Image

    shot = tmp_path / "first_screen.png"
    done = _run(chromium, f"--screenshot={shot}", report.as_uri())
    assert shot.exists(), f"no screenshot (exit {done.returncode}): {done.stderr[-800:]}"
    image = Image.open(shot).convert("L")
    assert image.size == (WIDTH, HEIGHT)
    lo, hi = image.getextrema()
    assert hi - lo > 100  # text on a background, not a blank page
