"""QGIS styles (QML) and a QGIS project (.qgs) for an item's outputs, written as plain XML.

No QGIS import: the files follow the QGIS 3 project/style format (tested by loading them in
QGIS 3.22 headless, ``tests/test_clients.py``). A project lists, top to bottom: the answer
layers, the masks, the objects by class and the raster, with paths relative to the project
file so that the output folder can be moved.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from pyproj import CRS

from georeason.geo.export.layers import atomic_path

__all__ = [
    "LayerSpec",
    "class_colour",
    "vector_renderer",
    "rgb_renderer",
    "write_qml",
    "write_project",
    "EVIDENCE",
    "ANSWER",
]

#: Colours (RGB) of the answer's evidence outline and of the answer region.
EVIDENCE = (255, 0, 200)
ANSWER = (0, 200, 255)
_PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
_FIXED = {
    "water": (30, 120, 230),
    "water body": (30, 120, 230),
    "lake": (60, 140, 255),
    "river": (0, 90, 200),
    "vegetation": (40, 170, 60),
    "building": (230, 90, 40),
    "buildings": (230, 90, 40),
    "road": (90, 90, 90),
}


def class_colour(name: str) -> tuple[int, int, int]:
    """A stable colour for a class name (fixed for common classes, else from a palette by hash)."""
    key = name.lower()
    if key in _FIXED:
        return _FIXED[key]
    return _PALETTE[zlib.crc32(key.encode()) % len(_PALETTE)]


def _rgba(c: tuple[int, int, int], a: int = 255) -> str:
    return f"{c[0]},{c[1]},{c[2]},{a}"


def _opt(name: str, value: str) -> str:
    return f'<Option name="{name}" type="QString" value={quoteattr(value)}/>'


def _symbol(family: str, colour: tuple[int, int, int], name: str, fill_alpha: int, width_mm: float) -> str:
    if family == "polygons":
        cls, stype = "SimpleFill", "fill"
        opts = [
            _opt("color", _rgba(colour, fill_alpha)),
            _opt("style", "solid" if fill_alpha else "no"),
            _opt("outline_color", _rgba(colour)),
            _opt("outline_style", "solid"),
            _opt("outline_width", f"{width_mm:g}"),
            _opt("outline_width_unit", "MM"),
        ]
    elif family == "lines":
        cls, stype = "SimpleLine", "line"
        opts = [
            _opt("line_color", _rgba(colour)),
            _opt("line_style", "solid"),
            _opt("line_width", f"{max(width_mm, 0.5):g}"),
            _opt("line_width_unit", "MM"),
        ]
    else:
        cls, stype = "SimpleMarker", "marker"
        opts = [
            _opt("name", "circle"),
            _opt("color", _rgba(colour)),
            _opt("outline_color", "0,0,0,255"),
            _opt("size", "2.4"),
            _opt("size_unit", "MM"),
        ]
    return (
        f'<symbol type="{stype}" name={quoteattr(name)} alpha="1" clip_to_extent="1" force_rhr="0">'
        f'<layer class="{cls}" enabled="1" locked="0" pass="0"><Option type="Map">{"".join(opts)}</Option>'
        "</layer></symbol>"
    )


def vector_renderer(
    family: str,
    *,
    classes: Sequence[str] = (),
    colour: tuple[int, int, int] = EVIDENCE,
    fill_alpha: int = 50,
    width_mm: float = 0.4,
) -> str:
    """A ``renderer-v2`` element: categorised by the ``class`` field when ``classes`` is given,
    else one symbol in ``colour``."""
    if classes:
        cats = "".join(
            f'<category render="true" symbol="{k}" value={quoteattr(c)} label={quoteattr(c)}/>'
            for k, c in enumerate(classes)
        )
        syms = "".join(
            _symbol(family, class_colour(c), str(k), fill_alpha, width_mm) for k, c in enumerate(classes)
        )
        return (
            '<renderer-v2 type="categorizedSymbol" attr="class" symbollevels="0" enableorderby="0" '
            f'forceraster="0"><categories>{cats}</categories><symbols>{syms}</symbols></renderer-v2>'
        )
    return (
        '<renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" forceraster="0">'
        f"<symbols>{_symbol(family, colour, '0', fill_alpha, width_mm)}</symbols></renderer-v2>"
    )


def rgb_renderer(bands: Sequence[int], stretch: Sequence[tuple[float, float]]) -> str:
    """A ``multibandcolor`` raster renderer: ``bands`` (1-based) as red, green, blue, each
    stretched linearly between its (low, high) (the quicklook's 2-98 percent stretch)."""
    parts = []
    for colour, (lo, hi) in zip(("red", "green", "blue"), stretch):
        parts.append(
            f"<{colour}ContrastEnhancement><minValue>{lo:g}</minValue><maxValue>{hi:g}</maxValue>"
            f"<algorithm>StretchToMinimumMaximum</algorithm></{colour}ContrastEnhancement>"
        )
    r, g, b = bands
    return (
        f'<pipe><rasterrenderer type="multibandcolor" redBand="{r}" greenBand="{g}" blueBand="{b}" '
        f'opacity="1" alphaBand="-1">{"".join(parts)}</rasterrenderer></pipe>'
    )


def _mask_renderer(colour: tuple[int, int, int] = ANSWER) -> str:
    hexc = "#{:02x}{:02x}{:02x}".format(*colour)
    return (
        '<pipe><rasterrenderer type="paletted" band="1" opacity="0.6" alphaBand="-1" nodataColor="">'
        '<colorPalette><paletteEntry value="0" color="#000000" alpha="0" label="outside"/>'
        f'<paletteEntry value="1" color="{hexc}" alpha="255" label="answer"/></colorPalette>'
        "</rasterrenderer></pipe>"
    )


_HEAD = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"


def write_qml(path: str | Path, renderer_xml: str) -> Path:
    """Write a QGIS style file (``.qml``) holding ``renderer_xml`` (symbology only).

    QGIS loads ``x.qml`` beside ``x.geojson`` / ``x.tif`` as the layer's default style.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(
            f'{_HEAD}<qgis version="3.22.0" styleCategories="Symbology">{renderer_xml}</qgis>\n',
            encoding="utf-8",
        )
    return path


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a project: ``source`` is a file path (GeoPackage layers: ``path|layername=x``)."""

    name: str
    source: str
    kind: str  # "vector" | "raster"
    family: str | None = None  # polygons | lines | points (vector)
    classes: tuple[str, ...] = ()
    colour: tuple[int, int, int] = EVIDENCE
    fill_alpha: int = 50
    width_mm: float = 0.4
    mask: bool = False
    visible: bool = True
    #: raster: 1-based bands shown as red, green, blue and their (low, high) stretch
    bands: tuple[int, ...] = ()
    stretch: tuple[tuple[float, float], ...] = ()
    #: the layer's CRS when not the project's (RFC 7946 GeoJSON: EPSG:4326)
    crs: CRS | None = None

    def renderer(self) -> str:
        if self.kind == "raster":
            if self.mask:
                return _mask_renderer(self.colour)
            return rgb_renderer(self.bands, self.stretch) if len(self.bands) == 3 and self.stretch else ""
        return vector_renderer(
            self.family or "polygons",
            classes=self.classes,
            colour=self.colour,
            fill_alpha=self.fill_alpha,
            width_mm=self.width_mm,
        )


_GEOM = {"polygons": "Polygon", "lines": "Line", "points": "Point"}


def _rel(source: str, base: Path) -> str:
    path, sep, rest = source.partition("|")
    p = Path(path)
    try:
        r = os.path.relpath(p.resolve(), base.resolve())
    except ValueError:  # another drive (Windows)
        r = str(p.resolve())
    r = r if os.path.isabs(r) or r.startswith(".") else f"./{r}"
    return r.replace(os.sep, "/") + sep + rest


def _srs(crs: CRS) -> str:
    wkt = quoteattr(crs.to_wkt())[1:-1]
    auth = crs.to_authority()
    authid = f"{auth[0]}:{auth[1]}" if auth else ""
    return f"<spatialrefsys><wkt>{wkt}</wkt><authid>{authid}</authid></spatialrefsys>"


def write_project(path: str | Path, title: str, crs: CRS, layers: Sequence[LayerSpec]) -> Path:
    """Write a QGIS project (``.qgs``) with ``layers`` (first drawn on top), relative paths.

    Each layer carries its style, so the project opens styled; ``crs`` is the project CRS.
    """
    path = Path(path)
    srs = _srs(crs)
    tree, maps, order = [], [], []
    for k, spec in enumerate(layers):
        # QGIS replaces short layer ids by random ones (and the layer tree then loses its
        # layers): ids are long and stable, from the position and the source
        lid = (
            f"georeason_{k:03d}_{zlib.crc32(spec.source.encode()):08x}{zlib.adler32(spec.name.encode()):08x}"
        )
        src = quoteattr(_rel(spec.source, path.parent))
        provider = "ogr" if spec.kind == "vector" else "gdal"
        checked = "Qt::Checked" if spec.visible else "Qt::Unchecked"
        tree.append(
            f"<layer-tree-layer id={quoteattr(lid)} name={quoteattr(spec.name)} source={src} "
            f'providerKey="{provider}" checked="{checked}" expanded="1"><customproperties/></layer-tree-layer>'
        )
        geom = f' geometry="{_GEOM[spec.family or "polygons"]}"' if spec.kind == "vector" else ""
        maps.append(
            f'<maplayer type="{spec.kind}"{geom} hasScaleBasedVisibilityFlag="0" autoRefreshEnabled="0">'
            f"<id>{lid}</id><datasource>{src[1:-1]}</datasource><layername>{quoteattr(spec.name)[1:-1]}</layername>"
            f'<srs>{_srs(spec.crs) if spec.crs is not None else srs}</srs><provider encoding="UTF-8">{provider}</provider>{spec.renderer()}</maplayer>'
        )
        order.append(f'<layer id="{lid}"/>')
    xml = (
        f'{_HEAD}<qgis projectname={quoteattr(title)} version="3.22.0-Białowieża">'
        f'<homePath path=""/><title>{quoteattr(title)[1:-1]}</title>'
        f"<projectCrs>{srs}</projectCrs>"
        f"<layer-tree-group><customproperties/>{''.join(tree)}"
        f'<custom-order enabled="0">{"".join(order)}</custom-order></layer-tree-group>'
        f"<projectlayers>{''.join(maps)}</projectlayers>"
        f"<layerorder>{''.join(order)}</layerorder>"
        '<properties><Paths><Absolute type="bool">false</Absolute></Paths>'
        '<SpatialRefSys><ProjectionsEnabled type="int">1</ProjectionsEnabled></SpatialRefSys></properties>'
        "</qgis>\n"
    )
    with atomic_path(path) as tmp:
        tmp.write_text(xml, encoding="utf-8")
    return path
