"""Load georeason outputs in QGIS headless and report what QGIS sees, as JSON on stdout.

Run by tests/test_clients.py with the system Python that has the QGIS bindings
(``/usr/bin/python3``, Debian ``python3-qgis``), never the project's virtualenv:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 qgis_check.py OUT_DIR PNG_DIR

For every vector file (each layer of a GeoPackage) and raster under OUT_DIR, loaded by
path: valid, CRS, geometry type, feature count, how many features the layer's renderer
draws (``willRenderFeature`` on features whose geometry type is the layer's), and a PNG
rendered of it. For every ``.qgs`` project: layers valid, renderer types, and a PNG of the
whole project.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsDataProvider,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsRenderContext,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor


def render(layers, extent, crs, png: Path, size: int = 800) -> int:
    """Render ``layers`` to ``png``; return the number of non-background pixels."""
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(crs)
    settings.setTransformContext(QgsProject.instance().transformContext())
    settings.setExtent(extent)
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    img = job.renderedImage()
    img.save(str(png), "PNG")
    white = QColor(255, 255, 255).rgb()
    step = 4
    return sum(
        1
        for x in range(0, img.width(), step)
        for y in range(0, img.height(), step)
        if img.pixel(x, y) != white
    )


def vector_report(layer: QgsVectorLayer, png: Path) -> dict:
    gtype = layer.geometryType()
    if layer.renderer() is None:  # a table without geometry (an abstention's record)
        return {
            "valid": layer.isValid(),
            "crs": layer.crs().authid(),
            "geometry_type": QgsWkbTypes.displayString(layer.wkbType()),
            "features": layer.featureCount(),
            "drawn": 0,
            "null_geometry": sum(1 for f in layer.getFeatures() if f.geometry().isNull()),
            "other_type": 0,
            "painted_px": 0,
        }
    ctx = QgsRenderContext()
    renderer = layer.renderer().clone()
    renderer.startRender(ctx, layer.fields())
    drawn = null = other_type = 0
    for f in layer.getFeatures():
        g = f.geometry()
        if g is None or g.isNull() or g.isEmpty():
            null += 1
            continue
        if QgsWkbTypes.geometryType(g.wkbType()) != gtype:
            other_type += 1
            continue
        if renderer.willRenderFeature(f, ctx):
            drawn += 1
    renderer.stopRender(ctx)
    painted = (
        render([layer], layer.extent().buffered(max(layer.extent().width(), 1) * 0.05), layer.crs(), png)
        if drawn
        else 0
    )
    return {
        "valid": layer.isValid(),
        "crs": layer.crs().authid(),
        "geometry_type": QgsWkbTypes.displayString(layer.wkbType()),
        "features": layer.featureCount(),
        "drawn": drawn,
        "null_geometry": null,
        "other_type": other_type,
        "painted_px": painted,
    }


def main(out_dir: Path, png_dir: Path) -> dict:
    png_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {"vectors": {}, "rasters": {}, "projects": {}}
    n = 0
    for path in sorted(out_dir.rglob("*")):
        if path.suffix not in (".geojson", ".gpkg", ".tif", ".qgs") or "/." in str(path):
            continue
        rel = str(path.relative_to(out_dir))
        if path.suffix in (".geojson", ".gpkg"):
            sublayers = [""]
            if path.suffix == ".gpkg":
                probe = QgsVectorLayer(str(path), "probe", "ogr")
                sep = QgsDataProvider.sublayerSeparator()
                sublayers = [s.split(sep)[1] for s in probe.dataProvider().subLayers()]
            for sub in sublayers:
                uri = f"{path}|layername={sub}" if sub else str(path)
                layer = QgsVectorLayer(uri, rel, "ogr")
                n += 1
                report["vectors"][f"{rel}|{sub}" if sub else rel] = vector_report(
                    layer, png_dir / f"v{n:03d}.png"
                )
        elif path.suffix == ".tif":
            layer = QgsRasterLayer(str(path), rel)
            n += 1
            painted = (
                render([layer], layer.extent(), layer.crs(), png_dir / f"r{n:03d}.png")
                if layer.isValid()
                else 0
            )
            report["rasters"][rel] = {
                "valid": layer.isValid(),
                "crs": layer.crs().authid(),
                "bands": layer.bandCount(),
                "painted_px": painted,
            }
        else:
            project = QgsProject.instance()
            project.clear()
            ok = project.read(str(path))
            layers = [node.layer() for node in project.layerTreeRoot().findLayers()]
            visible = [node.layer() for node in project.layerTreeRoot().findLayers() if node.isVisible()]
            extent = next((lyr.extent() for lyr in reversed(layers) if isinstance(lyr, QgsRasterLayer)), None)
            png = png_dir / f"{path.stem}.qgs.png"
            painted = render(visible, extent, project.crs(), png, size=1000) if extent is not None else 0
            report["projects"][rel] = {
                "read": bool(ok),
                "crs": project.crs().authid(),
                "layers": [
                    {
                        "name": lyr.name(),
                        "valid": lyr.isValid(),
                        "kind": "vector" if isinstance(lyr, QgsVectorLayer) else "raster",
                        "renderer": (
                            lyr.renderer().type()
                            if isinstance(lyr, QgsVectorLayer)
                            else (lyr.renderer().type() if lyr.renderer() else None)
                        ),
                        "features": lyr.featureCount() if isinstance(lyr, QgsVectorLayer) else None,
                    }
                    for lyr in layers
                ],
                "png": str(png),
                "painted_px": painted,
            }
    return report


if __name__ == "__main__":
    app = QgsApplication([], False)
    app.initQgis()
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))), flush=True)
    sys.stderr.flush()
    os._exit(0)  # QGIS 3.22 may crash in exitQgis() while tearing down layers: the report is out
