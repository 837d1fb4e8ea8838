"""MkDocs hooks: render the guide's figures before each build (see figures.py)."""

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "diffbio_docs_figures", Path(__file__).with_name("figures.py")
)
_figures = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_figures)


def on_pre_build(config, **kwargs) -> None:
    """Write missing or stale PNGs into docs/assets/generated/."""
    _figures.generate(Path(config["docs_dir"]) / "assets" / "generated")
