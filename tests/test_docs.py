"""docs/make_notebooks.py: every notebook's key figure, saved for the README."""

import importlib.util
import re
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPOSITORY / "notebooks").glob("[0-9]*.ipynb"))


def load_script():
    path = REPOSITORY / "docs" / "make_notebooks.py"
    spec = importlib.util.spec_from_file_location("make_notebooks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_has_one_key_figure_that_the_readme_shows():
    nbformat = pytest.importorskip("nbformat")
    readme = (REPOSITORY / "README.md").read_text()
    assert len(NOTEBOOKS) == 8
    for notebook in NOTEBOOKS:
        nb = nbformat.read(notebook, as_version=4)
        tagged = [
            cell
            for cell in nb.cells
            if "readme-figure" in cell.metadata.get("tags", [])
        ]
        assert len(tagged) == 1 and tagged[0].cell_type == "code", notebook.name
        # Stored without outputs: the figures live in docs/images.
        assert all(
            not cell.get("outputs") and cell.get("execution_count") is None
            for cell in nb.cells
            if cell.cell_type == "code"
        ), notebook.name
        image = f"docs/images/notebook_{notebook.name[:2]}.png"
        assert (REPOSITORY / image).is_file()
        assert image in readme and f"notebooks/{notebook.name}" in readme
    # Small files: the README's pictures must not bloat a clone.
    sizes = [p.stat().st_size for p in (REPOSITORY / "docs" / "images").glob("*.png")]
    assert max(sizes) < 150_000


def test_script_saves_the_tagged_figure_small(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    from PIL import Image

    draw = (
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=({width}, 3))\n"
        "ax.plot([0, 1], [0, {slope}])\n"
        "plt.show()"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%matplotlib inline"),
        nbformat.v4.new_code_cell(draw.format(width=4, slope=1)),
        nbformat.v4.new_code_cell(draw.format(width=16, slope=-1)),
    ]
    nb.cells[2].metadata["tags"] = ["readme-figure"]
    notebook = tmp_path / "09_example.ipynb"
    nbformat.write(nb, notebook)

    script = load_script()
    (written,) = script.main([notebook], images=tmp_path / "docs" / "images")
    assert written.name == "notebook_09.png"
    image = Image.open(written)
    # The tagged figure (16 inches wide, shrunk), not the first one.
    assert image.width == script.MAX_WIDTH and image.height < image.width / 4
    assert image.mode == "P"
    # The notebook on disk keeps no outputs.
    assert not nbformat.read(notebook, as_version=4).cells[2].outputs

    nb.cells[2].metadata["tags"] = []
    nbformat.write(nb, notebook)
    with pytest.raises(ValueError, match=re.escape("found 0")):
        script.key_figure(notebook)


DESIGN = REPOSITORY / "docs" / "design.md"
BENCHMARKS = REPOSITORY / "benchmarks" / "README.md"


def _sources_that_cite():
    yield REPOSITORY / "README.md"
    for folder in ("skmoe", "tests", "benchmarks", "notebooks", "docs"):
        for path in sorted((REPOSITORY / folder).rglob("*")):
            if path.suffix in {".py", ".md", ".ipynb"}:
                yield path


def test_citations_of_the_design_name_sections_that_exist():
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", DESIGN.read_text(), re.M))
    assert {"1", "2", "2.2", "3", "4", "4.2", "5", "6"} <= sections
    # The original plan lived outside the repository; the code cites the
    # document that ships with it.
    outside = re.compile(r"\bDESIGN(?:\.md)?\b\s*§|DESIGN\.md")
    cited = 0
    for path in _sources_that_cite():
        text = path.read_text()
        assert not outside.search(text), path.relative_to(REPOSITORY)
        for section in re.findall(r"docs/design\.md\s+§(\d+(?:\.\d+)?)", text):
            assert section in sections, f"{path.relative_to(REPOSITORY)}: §{section}"
            cited += 1
    assert cited > 0


@pytest.mark.parametrize(
    "document", [DESIGN, REPOSITORY / "README.md"], ids=["design", "readme"]
)
def test_cited_benchmark_sections_exist(document):
    headings = re.findall(r"^## (.+)$", BENCHMARKS.read_text(), re.M)
    names = re.findall(r'benchmarks/README\.md`?,\s+"([^"]+)"', document.read_text())
    assert names
    for name in names:
        name = " ".join(name.split())
        assert any(heading.startswith(name) for heading in headings), name


def test_sections_cited_in_the_code_exist():
    """Comments cite benchmarks/README.md sections instead of quoting figures."""
    headings = re.findall(r"^## (.+)$", BENCHMARKS.read_text(), re.M)
    cited = []
    for path in sorted((REPOSITORY / "skmoe").glob("*.py")):
        # A citation may run over comment lines.
        text = " ".join(re.sub(r"\n\s*#", " ", path.read_text()).split())
        for name in re.findall(r'benchmarks/README\.md`*,\s+"([^"]+)"', text):
            cited.append((path.name, name))
    assert cited
    missing = [
        (module, name)
        for module, name in cited
        if not any(heading.startswith(name) for heading in headings)
    ]
    assert missing == []
