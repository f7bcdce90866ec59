"""Check the built documentation in a headless browser, as a reader would see it.

Run from the repository root after building the site::

    python doc/check_site.py doc/_build/html

Every page is opened in headless Chromium at 1280 x 900 pixels (through Selenium and the system's
``chromium`` and ``chromedriver``; on Debian ``apt-get install chromium chromium-driver``), after
MathJax has typeset it. A page fails when

* the browser's console reports an error (a script that throws, a file that does not load);
* its prose, as rendered (code blocks, typeset maths and the search box left out), shows LaTeX
  (``\\sigma``, ``\\_``), a backtick, or a ``$`` pair around text: markup that did not render;
* a literal names something of skflow's private modules (``skflow._trainer``, or a function
  there that no public module exports): a name the reader cannot use;
* a link or an image to a page of the site points at a missing file or a missing anchor;
* the page is wider than the window, or a code block or table must be scrolled sideways to be
  read.

The landing page must link to the API page of every public estimator, and some page must document
(have the anchor of) every name that skflow and its public modules export. Screenshots of the
landing page and of every gallery example go to ``<site>/../screenshots``. (The figures of the
gallery are checked as the build saves them: ``doc/conf.py`` refuses one whose title, label or
legend reaches beyond its edges, :func:`cut_off_texts`.)
The exit status is the number of failing pages (capped at 100); each failure is printed.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

WIDTH, HEIGHT = 1280, 900
"""The window: a common laptop's width."""

SKIPPED_FOLDERS = {"_static", "_sources", "_images", "_downloads", "_modules"}

RAW_MARKUP = {
    "LaTeX": re.compile(r"\\(?:[A-Za-z]{2,}|[_{}^])"),
    "a backtick": re.compile(r"`"),
    "dollar-delimited maths": re.compile(r"\$[^$\s][^$]*\$"),
}
"""What rendered prose must not contain, by name."""

# The page's prose as rendered: the article's text without code, typeset maths or scripts. It
# waits for MathJax 3 to finish typesetting when the page loads it.
PROSE_SCRIPT = """
const done = arguments[arguments.length - 1];
const typeset = (window.MathJax && MathJax.startup && MathJax.startup.promise)
    ? MathJax.startup.promise : Promise.resolve();
const late = new Promise((resolve) => setTimeout(resolve, 20000));
Promise.race([typeset, late]).catch(() => null).then(() => {
  try {
    const main = document.querySelector("article") || document.body;
    const copy = main.cloneNode(true);
    copy.querySelectorAll(
        "pre, code, .highlight, .sig, mjx-container, .math, script, style, .MathJax, form"
    ).forEach((node) => node.remove());
    const root = document.documentElement;
    // code blocks, and any box of the article that scrolls sideways (e.g. a wide table's)
    const scrolled = [...document.querySelectorAll("article *")]
        .filter((node) => node.tagName === "PRE"
                || ["auto", "scroll"].includes(getComputedStyle(node).overflowX))
        .filter((node) => node.scrollWidth > node.clientWidth + 1)
        .map((node) => node.tagName.toLowerCase() + ": "
             + node.textContent.trim().slice(0, 60).replace(/\\s+/g, " "));
    const literals = [...main.querySelectorAll("code")]
        .filter((node) => !node.closest("pre, .highlight, .sig"))
        .map((node) => node.textContent.trim());
    done({
        prose: copy.innerText,
        literals: literals,
        pageWidth: root.scrollWidth,
        windowWidth: root.clientWidth,
        scrolled: scrolled,
        typeset: document.querySelectorAll("mjx-container").length,
        maths: document.querySelectorAll(".math").length,
    });
  } catch (error) { done({error: String(error)}); }
});
"""


@dataclass
class Page:
    """The links, images and anchors of one HTML file."""

    links: list[str] = field(default_factory=list)
    anchors: set[str] = field(default_factory=set)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("id", "name"):
            if attributes.get(name) and (name == "id" or tag == "a"):
                self.page.anchors.add(attributes[name])
        target = attributes.get("href") if tag in ("a", "link") else None
        if tag in ("img", "script"):
            target = attributes.get("src")
        if target:
            self.page.links.append(target)


def parse(path: Path) -> Page:
    """The links and anchors of the HTML file at ``path``."""
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.page


def broken_links(site: Path, path: Path, pages: dict[Path, Page]) -> list[str]:
    """The links of ``path`` to files of the site that do not exist, or to anchors that its
    target does not have."""
    problems = []
    for link in pages[path].links:
        parts = urlsplit(link)
        if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
            continue  # outside the site
        target = (path.parent / unquote(parts.path)).resolve() if parts.path else path.resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file() or site.resolve() not in target.parents:
            problems.append(f"broken link {link!r}")
        elif parts.fragment and target.suffix == ".html":
            if target not in pages:
                pages[target] = parse(target)
            if unquote(parts.fragment) not in pages[target].anchors:
                problems.append(f"link {link!r} to a missing anchor")
    return problems


def skflow_modules() -> dict[str, object]:
    """skflow's modules, public and private, by their name within the package."""
    import skflow

    return {
        info.name: importlib.import_module(f"skflow.{info.name}")
        for info in pkgutil.iter_modules(skflow.__path__)
    }


def private_names() -> set[str]:
    """Names defined in skflow's private modules and public nowhere: the reader cannot use them."""
    import skflow

    public = set(skflow.__all__)
    private = set()
    for name, module in skflow_modules().items():
        if name.startswith("_"):
            private |= {
                member
                for member, value in vars(module).items()
                if not member.startswith("_")
                and getattr(value, "__module__", None) == module.__name__
            }
        else:
            public |= set(getattr(module, "__all__", ()))
    return private - public


def rendering_problems(measures: dict, hidden: set[str]) -> list[str]:
    """What the browser's measures of one page say is wrong with it; ``hidden``: the names that
    must not appear in its literals."""
    problems = []
    for literal in measures["literals"]:
        name = re.sub(r"\(.*\)$", "", literal).rsplit(".", 1)[-1]
        if literal.startswith("skflow._") or name in hidden:
            problems.append(f"a private name in the text: {literal!r}")
    for name, pattern in RAW_MARKUP.items():
        for match in list(pattern.finditer(measures["prose"]))[:3]:
            start = max(0, match.start() - 30)
            context = measures["prose"][start : match.end() + 30].replace("\n", " ")
            problems.append(f"{name} in the rendered text: ...{context}...")
    if measures["typeset"] < measures["maths"]:
        problems.append(f"{measures['maths']} maths elements, {measures['typeset']} typeset")
    if measures["pageWidth"] > measures["windowWidth"]:
        problems.append(
            f"the page is {measures['pageWidth']} px wide in a {measures['windowWidth']} px window"
        )
    problems += [f"scrolls sideways at {WIDTH} px: {what}" for what in measures["scrolled"]]
    return problems


def cut_off_texts(figure) -> list[str]:
    """The titles, axis labels, legend entries and other texts of a matplotlib ``figure`` (tick
    labels aside) that reach beyond its edges, where a saved image would clip them."""
    from matplotlib.text import Text

    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    ticks = {
        id(label)
        for axes in figure.axes
        for axis in (axes.xaxis, axes.yaxis)
        for tick in axis.get_major_ticks() + axis.get_minor_ticks()
        for label in (tick.label1, tick.label2)
    }
    edges = figure.bbox
    problems = []
    for text in figure.findobj(Text):
        if id(text) in ticks or not text.get_visible() or not text.get_text().strip():
            continue
        box = text.get_window_extent(renderer)
        if (
            box.x0 < edges.x0 - 1
            or box.y0 < edges.y0 - 1
            or box.x1 > edges.x1 + 1
            or box.y1 > edges.y1 + 1
        ):
            problems.append(f"the text {text.get_text()!r} is cut off by the figure's edge")
    return problems


def checked_matplotlib_scraper(block, block_vars: dict, gallery_conf: dict, **kwargs) -> str:
    """sphinx-gallery's matplotlib scraper, once no open figure has a text cut off by its edges
    (:func:`cut_off_texts`); ``doc/conf.py`` names it in ``image_scrapers``."""
    import matplotlib.pyplot as plt
    from sphinx_gallery.scrapers import matplotlib_scraper

    for number in plt.get_fignums():
        problems = cut_off_texts(plt.figure(number))
        if problems:
            raise ValueError(f"{block_vars['src_file']}, figure {number}: {'; '.join(problems)}")
    return matplotlib_scraper(block, block_vars, gallery_conf, **kwargs)


def browser():
    """Headless Chromium at ``WIDTH`` x ``HEIGHT`` that keeps the console's messages."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={WIDTH},{HEIGHT}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path="/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(60)
    return driver


def check_page(
    driver, site: Path, path: Path, pages: dict[Path, Page], hidden: set[str]
) -> list[str]:
    """Every problem of one page of ``site``; ``hidden``: names its text must not show."""
    from selenium.webdriver.support.wait import WebDriverWait

    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 30).until(
        lambda driver: driver.execute_script(
            "return document.readyState === 'complete' && document.body !== null"
        )
    )
    measures = driver.execute_async_script(PROSE_SCRIPT)
    if "error" in measures:
        raise RuntimeError(f"measuring {path}: {measures['error']}")
    problems = [
        f"console: {entry['message']}"
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
    ]
    return problems + rendering_problems(measures, hidden) + broken_links(site, path, pages)


def landing_page_problems(site: Path, estimators: list[str]) -> list[str]:
    """The ``estimators`` whose API page the landing page does not link to."""
    links = {urlsplit(link).path for link in parse(site / "index.html").links}
    return [
        f"the landing page does not link to {name}"
        for name in estimators
        if f"generated/skflow.{name}.html" not in links
    ]


def public_names() -> dict[str, list[str]]:
    """Every public name of skflow, with the anchors that would document it:
    ``skflow.<module>.<name>`` (or ``skflow.<name>`` where the package exports it too) for the
    ``__all__`` of each public module, and ``skflow.<name>`` for the package's own."""
    import skflow

    names = {name: [f"skflow.{name}"] for name in skflow.__all__ if name != "__version__"}
    for module_name, module in skflow_modules().items():
        if not module_name.startswith("_"):
            for name in getattr(module, "__all__", ()):
                qualified = f"skflow.{module_name}.{name}"
                names.setdefault(qualified, []).extend([qualified, f"skflow.{name}"])
    return names


def undocumented(pages: dict[Path, Page], names: dict[str, list[str]]) -> list[str]:
    """The public names that no page of the site has an anchor for."""
    anchors = set().union(*(page.anchors for page in pages.values()))
    return [
        f"{name} is not in the API reference"
        for name, candidates in names.items()
        if not anchors.intersection(candidates)
    ]


def public_estimators() -> list[str]:
    """The names of skflow's public estimator classes."""
    from sklearn.base import BaseEstimator

    import skflow

    classes = {name: getattr(skflow, name) for name in skflow.__all__}
    return [
        name
        for name, value in classes.items()
        if isinstance(value, type) and issubclass(value, BaseEstimator)
    ]


def screenshot(driver, out: Path) -> None:
    """The whole page open in ``driver`` as a PNG at ``out``, ``WIDTH`` wide."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(max(height, HEIGHT), 12000))
    out.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out))
    driver.set_window_size(WIDTH, HEIGHT)


def check_site(site: Path, screenshots: Path | None = None) -> dict[str, list[str]]:
    """The problems of every page of ``site``, by page (pages without problems left out)."""
    site = site.resolve()
    files = sorted(
        path
        for path in site.rglob("*.html")
        if not SKIPPED_FOLDERS & set(path.relative_to(site).parts)
    )
    pages = {path: parse(path) for path in files}
    hidden = private_names()
    failures = {}
    problems = undocumented(pages, public_names())
    if problems:
        failures["api.html (public names)"] = problems
    if (site / "index.html").is_file():
        problems = landing_page_problems(site, public_estimators())
        if problems:
            failures["index.html (the estimators)"] = problems
    driver = browser()
    try:
        for path in files:
            problems = check_page(driver, site, path, pages, hidden)
            if problems:
                failures[str(path.relative_to(site))] = problems
            name = path.relative_to(site).as_posix()
            if screenshots is not None and (
                name == "index.html" or re.fullmatch(r"auto_examples/plot_\w+\.html", name)
            ):
                screenshot(driver, screenshots / (path.stem + ".png"))
    finally:
        driver.quit()
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built HTML site, e.g. doc/_build/html")
    parser.add_argument("--screenshots", type=Path, help="default: <site>/../screenshots")
    args = parser.parse_args()
    screenshots = args.screenshots or args.site.parent / "screenshots"
    failures = check_site(args.site, screenshots)
    n_pages = sum(1 for _ in args.site.rglob("*.html"))
    for page, problems in failures.items():
        print(page)
        for problem in problems:
            print("   ", problem)
    print(f"{len(failures)} failing pages; screenshots in {screenshots} ({n_pages} HTML files)")
    return min(len(failures), 100)


if __name__ == "__main__":
    sys.exit(main())
