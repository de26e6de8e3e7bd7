"""The report on full and partial grids, the CLI's exit codes, and the import boundary."""

from __future__ import annotations

import argparse
import html
import json
import subprocess
import sys

import pytest

from analysis import write_report
from analysis.cli import main, register

SECTIONS = ("Findings", "Confusion matrices", "Per-class recall against label noise", "Per-class recall against less training data",
            "Which classes are most sensitive to label noise", "Breakpoints against label noise",
            "Directional confusions", "Misleading labels or less data?", "Exchange rate", "Classes by recall")


def test_analysis_never_imports_torch_or_ray():
    code = ("import sys, analysis, analysis.report, analysis.cli; "
            "bad = [m for m in ('torch', 'ray') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_full_report_through_the_cli_has_every_section_and_figure(small_dir, tmp_path, capsys):
    assert main(["report", str(small_dir), "--to", str(tmp_path / "rep"), "--n-boot", "200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    page = (tmp_path / "rep" / "index.html").read_text()
    for section in SECTIONS:
        assert section in page, section
    assert page.count("data:image/png;base64,") >= 9
    assert "Not shown" not in page
    assert (tmp_path / "rep" / "confusion_blog_cnn_baseline.png").exists()
    assert (tmp_path / "rep" / "ranking_noise.csv").exists()
    assert any("curves and breakpoints" in line for line in lines)
    assert lines[-1] == f"report: open {tmp_path / 'rep' / 'index.html'}"


def test_report_opens_with_findings_and_a_contents_list(small_dir, tmp_path, capsys):
    assert main(["report", str(small_dir), "--to", str(tmp_path / "rep"), "--n-boot", "200"]) == 0
    out = capsys.readouterr().out.splitlines()
    page = (tmp_path / "rep" / "index.html").read_text()
    positions = [page.index(f"<h2 id='{anchor}'>") for anchor in
                 ("findings", "which-classes-are-most-sensitive-to-label-noise", "confusion-matrices")]
    assert positions == sorted(positions)  # findings first, the rankings above the first confusion matrix
    assert page.index("<nav class='contents'>") < positions[0]
    assert page.count("<li><a href='#") == page.count("<h2 id=")  # every section linked
    rows = json.loads((tmp_path / "rep" / "findings.json").read_text())
    assert rows and set(rows[0]) >= {"kind", "sentence", "ci_low", "ci_high", "p_value", "settled", "seeds_needed"}
    bee = [r for r in rows if r["kind"] == "noise_bend" and r["subject"] == "bee"]
    assert bee and bee[0]["settled"] and html.escape(bee[0]["sentence"]) in page
    # The headline sentences are printed at the end of the run, before the line that says where the page is.
    heads = [r for r in rows if r["headline"]]
    assert len(heads) < len(rows)
    first = out.index(next(line for line in out if line.startswith("report: ") and "headline findings" in line))
    assert out[first + 1 : first + 1 + len(heads)] == [
        f"  {'+' if r['settled'] else '-' if r['missing'] else '?'} {r['sentence']}" for r in heads]
    assert first + 1 + len(heads) == len(out) - 1


def test_report_on_noise_only_grid_notes_what_is_missing(write, tmp_path):
    out = write(train_fractions=(1.0,), n_seeds=3)
    index = write_report(out, n_boot=200, progress=None)
    assert index == out / "report" / "index.html"
    page = index.read_text()
    assert "Not shown" in page and "factor=&#x27;size&#x27; needs at least 2 train fractions" in page
    assert "Which classes are most sensitive to label noise" in page and "curves_noise_blog_cnn.png" in page


def test_report_on_one_seed_size_only_grid(write):
    out = write(noise_fractions=(0.0,), n_seeds=1)
    page = write_report(out, n_boot=200, progress=None).read_text()
    assert "Not shown" in page and "ranking_size_blog_cnn.png" in page


@pytest.mark.parametrize("breakage, message", [
    ("empty", "folder is empty"),
    ("other", "missing column"),
    ("no-baseline", "no baseline cell"),
    ("missing", "results folder not found"),
])
def test_cli_bad_input_is_one_line_and_exit_2(write, tmp_path, capsys, breakage, message):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "bad"
    if breakage == "empty":
        (out / "confusion").mkdir(parents=True)
    elif breakage == "other":
        (out / "confusion").mkdir(parents=True)
        pq.write_table(pa.table({"x": [1]}), out / "confusion" / "x.parquet")
    elif breakage == "no-baseline":
        out = write(noise_fractions=(0.2, 0.4))
    code = main(["report", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("analysis report: error: ") and message in err
    assert not (out / "report").exists()


def test_python_m_analysis_exit_code(tmp_path):
    done = subprocess.run([sys.executable, "-m", "analysis", "report", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("analysis report: error: ")


def test_help_text(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    assert "--to DIR" in help_text and "default OUT/report" in help_text and "self-contained" in help_text


def test_register_into_another_program(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="sweep")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(tmp_path / "nothing"), "--to", str(tmp_path / "r")])
    assert args.to == str(tmp_path / "r") and args.n_boot == 1000
    assert args.handler(args) == 2
    assert capsys.readouterr().err.startswith("sweep report: error: results folder not found")
    assert not (tmp_path / "r").exists()
