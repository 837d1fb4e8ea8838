"""MkDocs hooks: render the figures before each build (figures.py for the user guide,
example_figures.py for the examples gallery) and turn every formula into MathML
(mathml.py), so that the site needs no JavaScript math renderer and works offline."""

import importlib.util
import logging
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.diffbio")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(
        f"diffbio_docs_{name}", Path(__file__).with_name(f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_figures = _load("figures")
_example_figures = _load("example_figures")
_mathml = _load("mathml")


def on_pre_build(config, **kwargs) -> None:
    """Write missing or stale PNGs into docs/assets/generated/."""
    generated = Path(config["docs_dir"]) / "assets" / "generated"
    _figures.generate(generated)
    _example_figures.generate(generated / "examples")


def on_page_content(html: str, page, **kwargs) -> str:
    """Replace the TeX of every formula by MathML; a formula that does not convert is a
    warning (an error under `--strict`)."""
    html, problems = _mathml.render(html)
    for problem in problems:
        log.warning("%s: %s", page.file.src_uri, problem)
    return html
