"""Run the teaching notebooks and save the key figure of each for the README.

Run from the repository root: ``python docs/make_notebooks.py`` runs every
notebook in ``notebooks/``; ``python docs/make_notebooks.py NOTEBOOK ...``
runs the ones named. Needs the ``test`` extra (nbclient and a Python kernel
come with nbmake; matplotlib).

A notebook's key figure is the image that its code cell tagged
``readme-figure`` (cell metadata ``"tags"``) draws. It is saved as
``docs/images/notebook_NN.png``, ``NN`` the notebook's number, shrunk to at
most 900 pixels wide and reduced to 256 colours, so that each file stays at
a few tens of kilobytes. The notebooks in git stay without outputs: this
script writes only the PNGs.
"""

import base64
import io
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
IMAGES = REPOSITORY / "docs" / "images"
TAG = "readme-figure"
# Widest saved figure, in pixels: the README shows them at half that.
MAX_WIDTH = 900
# Seconds a single cell may run.
CELL_TIMEOUT = 600


def key_figure(notebook):
    """Execute a notebook and return the PNG bytes of its tagged cell's figure.

    Parameters
    ----------
    notebook : path-like
        The notebook, run with its own folder as working directory.

    Returns
    -------
    png : bytes
        The image output of the one code cell tagged ``readme-figure``.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = Path(notebook)
    nb = nbformat.read(notebook, as_version=4)
    tagged = [
        cell
        for cell in nb.cells
        if cell.cell_type == "code" and TAG in cell.metadata.get("tags", [])
    ]
    if len(tagged) != 1:
        raise ValueError(
            f"{notebook.name}: expected one code cell tagged {TAG!r}, "
            f"found {len(tagged)}."
        )
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    client.execute()
    images = [
        output["data"]["image/png"]
        for output in tagged[0].outputs
        if "image/png" in output.get("data", {})
    ]
    if len(images) != 1:
        raise ValueError(
            f"{notebook.name}: the cell tagged {TAG!r} drew {len(images)} "
            "figures; it must draw one."
        )
    return base64.b64decode(images[0])


def shrink(png, max_width=MAX_WIDTH):
    """Return a PNG at most ``max_width`` wide, in 256 colours (bytes)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > max_width:
        height = round(image.height * max_width / image.width)
        image = image.resize((max_width, height), Image.Resampling.LANCZOS)
    image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main(notebooks, images=IMAGES):
    """Save the key figure of every notebook; return the paths written."""
    images = Path(images)
    images.mkdir(parents=True, exist_ok=True)
    written = []
    for notebook in notebooks:
        number = Path(notebook).name.split("_")[0]
        path = images / f"notebook_{number}.png"
        path.write_bytes(shrink(key_figure(notebook)))
        print(f"{Path(notebook).name} -> {path.relative_to(images.parent.parent)}")
        written.append(path)
    return written


if __name__ == "__main__":
    named = sys.argv[1:] or sorted((REPOSITORY / "notebooks").glob("[0-9]*.ipynb"))
    main(named)
