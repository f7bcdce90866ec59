"""Tests of ``doc/check_site.py``, the browser check of the built documentation.

What is tested against what
---------------------------
* A small site whose pages are clean passes: no problem on any page.
* Each defect the documentation once had, put back into a page of that site, is reported on that
  page and nowhere else: raw LaTeX (``\\sigma_j``), a literal backtick, an escaped ``offset\\_``,
  a private name (``auto_max_iter``), a maths element that MathJax did not typeset, a link to a
  missing page and to a missing anchor, a code block wider than a 1280-pixel window, a table that
  must be scrolled sideways, a page wider than the window, and a script error in the console.
* ``cut_off_texts``, which the gallery's image scraper runs on every figure, reports the subplot
  titles that the gallery once clipped (equal-aspect panels, two-line titles, ``tight_layout``)
  and none once the figure uses a constrained layout; it needs matplotlib only.
* A landing page that does not link to every public estimator is reported, naming the missing one;
  so is a public name (one of a public module's ``__all__``) that no page documents.

The check needs Chromium and its driver (``apt-get install chromium chromium-driver``) and
Selenium; without them these tests are skipped, unless ``SKFLOW_REQUIRE_BROWSER=1`` (set by CI),
which turns the skip into a failure.
"""

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

CHECKER = Path(__file__).resolve().parent.parent / "doc" / "check_site.py"
ESTIMATORS = [
    "FlowMatchingClassifier",
    "FlowMatchingDensity",
    "FlowMatchingImputer",
    "FlowMatchingOutlierDetector",
    "InterpolantTransport",
]


def _checker():
    missing = [
        what
        for what, present in [
            ("chromium", shutil.which("chromium")),
            ("chromedriver", shutil.which("chromedriver")),
            ("selenium", importlib.util.find_spec("selenium")),
        ]
        if not present
    ]
    if missing:
        message = f"the browser check needs {', '.join(missing)}"
        if os.environ.get("SKFLOW_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return _load_checker()


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_site", CHECKER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_site"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def _page(body: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head>"
        f"<body><article>{body}</article></body></html>"
    )


CLEAN = _page(
    "<h1 id='top'>A page</h1><p>Prose with <code>score_samples</code> and a "
    "<a href='index.html#estimators'>link</a> to <a href='#top'>anchors</a>.</p>"
    "<pre>flow = FlowMatchingDensity(random_state=0).fit(X)  # `ticks` in code are fine</pre>"
)

DEFECTS = {
    "raw LaTeX": ("<p>the scale \\sigma_j of feature j</p>", "LaTeX"),
    "backtick": ("<p>call `fit` first</p>", "a backtick"),
    "escaped underscore": ("<p>the threshold offset\\_ of the detector</p>", "LaTeX"),
    "private name": ("<p>the budget <code>auto_max_iter</code> gives</p>", "a private name"),
    "untypeset maths": ("<div class='math'>\\[x^2\\]</div>", "typeset"),
    "missing page": ("<p><a href='missing.html'>gone</a></p>", "broken link"),
    "missing anchor": ("<p><a href='index.html#nowhere'>gone</a></p>", "missing anchor"),
    "wide code": (f"<pre>{'x = 1; ' * 60}</pre>", "scrolls sideways"),
    "wide page": ("<div style='width: 2000px'>wide</div>", "px wide"),
    "wide table": (
        "<div style='overflow-x: auto'><table><tr><td style='min-width: 3000px'>cell</td></tr>"
        "</table></div>",
        "scrolls sideways",
    ),
    "script error": ("<script>undefinedFunction();</script><p>text</p>", "console"),
}


def _site(checker, root: Path, index_links: list[str], left_out: str | None = None) -> Path:
    """A small clean site: a landing page linking to ``index_links``, a page per estimator, an API
    page with the anchor of every public name but ``left_out``, and one more page."""
    site = root / "html"
    (site / "generated").mkdir(parents=True)
    anchors = "".join(
        f"<dt id='{candidates[0]}'>{name}</dt>"
        for name, candidates in checker.public_names().items()
        if name != left_out
    )
    (site / "api.html").write_text(_page(f"<dl>{anchors}</dl>"))
    links = "".join(f"<a href='generated/skflow.{name}.html'>{name}</a>" for name in index_links)
    (site / "index.html").write_text(_page(f"<h2 id='estimators'>Estimators</h2><p>{links}</p>"))
    for name in ESTIMATORS:
        (site / "generated" / f"skflow.{name}.html").write_text(_page(f"<h1>{name}</h1>"))
    (site / "clean.html").write_text(CLEAN)
    return site


def test_a_clean_site_passes(tmp_path):
    checker = _checker()
    site = _site(checker, tmp_path, ESTIMATORS)
    assert checker.check_site(site, tmp_path / "shots") == {}
    assert (tmp_path / "shots" / "index.png").stat().st_size > 0


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_fails_its_page(tmp_path, defect):
    checker = _checker()
    site = _site(checker, tmp_path, ESTIMATORS)
    markup, expected = DEFECTS[defect]
    (site / "defect.html").write_text(_page(markup))
    failures = checker.check_site(site)
    assert list(failures) == ["defect.html"], failures
    assert any(expected in problem for problem in failures["defect.html"]), failures


def test_a_landing_page_without_an_estimator_fails(tmp_path):
    checker = _checker()
    site = _site(checker, tmp_path, ESTIMATORS[:-1])
    failures = checker.check_site(site)
    assert failures == {
        "index.html (the estimators)": ["the landing page does not link to InterpolantTransport"]
    }


def test_an_undocumented_public_name_fails(tmp_path):
    checker = _checker()
    site = _site(checker, tmp_path, ESTIMATORS, left_out="skflow.likelihood.rademacher_probes")
    assert checker.check_site(site) == {
        "api.html (public names)": [
            "skflow.likelihood.rademacher_probes is not in the API reference"
        ]
    }


@pytest.mark.parametrize("layout", ["tight", "constrained"])
def test_clipped_subplot_titles_are_reported(layout):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    checker = _load_checker()
    constrained = layout == "constrained"
    figure, axes = plt.subplots(
        1, 4, figsize=(14, 4.2 if constrained else 3.9), layout=layout if constrained else None
    )
    for ax in axes:
        ax.set_title("a subplot title\non two lines")
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    if not constrained:
        figure.tight_layout()
    problems = checker.cut_off_texts(figure)
    plt.close(figure)
    assert len(problems) == (0 if constrained else 4), problems
