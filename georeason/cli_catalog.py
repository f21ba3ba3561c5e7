"""``georeason catalog``: add, list and validate scenes of the STAC catalog.

Exit status: 0 on success; 2 on a refused input or a catalog with problems (the message,
on stderr, names the file and what to do). A refused ``add`` leaves the catalog unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from georeason.errors import GeoreasonError

__all__ = ["catalog_app"]

catalog_app = typer.Typer(
    name="catalog",
    help="The STAC catalog of scenes: add a georeferenced raster, list items, validate assets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CatalogOpt = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        "-c",
        metavar="DIR",
        help="Catalog folder (default: the shipped data_catalog/). Created by `add` if new.",
    ),
]


AllowExternalOpt = Annotated[
    bool,
    typer.Option(
        "--allow-external",
        help="Trust the catalog: follow absolute paths and symlinks leading outside its folder (URLs stay refused).",
    ),
]
AssetRootOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--asset-root",
        metavar="DIR",
        help="Also allow assets and links inside DIR (repeatable); by default only the catalog folder.",
    ),
]


def policy_of(allow_external: bool, asset_root: list[Path] | None):
    """The :class:`~georeason.catalog.AssetPolicy` of the CLI flags (env defaults otherwise)."""
    from georeason.catalog import AssetPolicy

    env = AssetPolicy.from_env()
    roots = tuple(Path(r).resolve() for r in asset_root or ()) + env.roots
    return AssetPolicy(roots, allow_external or env.allow_external)


def _fail(exc: Exception) -> None:
    msg = " ".join((str(exc) or type(exc).__name__).split())
    typer.echo(f"georeason: error: {msg}", err=True)
    raise typer.Exit(code=2)


def _human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@catalog_app.command("add")
def add(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Georeferenced raster to add (GeoTIFF/COG).")],
    vectors: Annotated[
        list[Path] | None,
        typer.Option(
            "--vectors",
            "-v",
            metavar="FILE",
            help="Vector layer of the scene (repeatable): GeoJSON, GeoPackage, GeoParquet.",
        ),
    ] = None,
    catalog: CatalogOpt = None,
    item_id: Annotated[
        str | None, typer.Option("--id", metavar="ID", help="Item id (default: the raster's file stem).")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite an existing item with the same id.")
    ] = False,
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="Re-register an item whose raster changed in place (new checksum); same as --replace.",
        ),
    ] = False,
    datetime: Annotated[
        str | None,
        typer.Option(
            "--datetime",
            metavar="ISO",
            help="Acquisition time (ISO 8601) if the file has no TIFF DATETIME tag.",
        ),
    ] = None,
    bands: Annotated[
        str | None,
        typer.Option(
            "--bands",
            metavar="NAMES",
            help="Band names in order, e.g. red,green,blue (recorded as eo:bands).",
        ),
    ] = None,
) -> None:
    """Check a raster (CRS, geotransform, readable blocks) and add it as a STAC item.

    Files from outside the catalog folder are copied into DIR/<id>/; files already inside it are referenced in place. A refused raster (exit 2) leaves the catalog unchanged.
    """
    from georeason.catalog import add_item, default_catalog_dir

    target = catalog if catalog is not None else default_catalog_dir()
    try:
        item = add_item(
            target,
            path,
            vectors=vectors or None,
            item_id=item_id,
            replace=replace or update,
            datetime=datetime,
            bands=bands,
        )
    except (GeoreasonError, OSError) as exc:
        _fail(exc)
    n_vec = sum(1 for a in item.assets.values() if a.has_role("vector"))
    typer.echo(
        f"added item {item.id!r} ({item.properties.get('proj:code') or 'WKT CRS'}, "
        f"{n_vec} vector layer{'s' if n_vec != 1 else ''}) to {target}"
    )


@catalog_app.command("list")
def list_(
    catalog: CatalogOpt = None, allow_external: AllowExternalOpt = False, asset_root: AssetRootOpt = None
) -> None:
    """List the catalog's items: id, CRS, size, bands, vector layers."""
    from rich.console import Console
    from rich.table import Table

    from georeason.catalog import default_catalog_dir, list_items
    from georeason.progress import task

    target = catalog if catalog is not None else default_catalog_dir()
    try:
        with task("reading the catalog items", total=None) as advance:
            items = list_items(target, policy_of(allow_external, asset_root), advance=advance)
    except GeoreasonError as exc:
        _fail(exc)
    console = Console()
    if not items:
        console.print(f"catalog {target}: no items")
        return
    table = Table(title=f"catalog {target}")
    for col in ("id", "CRS", "size", "gsd", "bands", "vectors"):
        table.add_column(col)
    for it in items:
        size = f"{it.shape[1]}×{it.shape[0]} px" if it.shape else "?"
        size += f", {_human_size(it.size_bytes)}"
        gsd = f"{it.gsd:g} m" if it.gsd is not None else "?"
        table.add_row(
            it.id, it.crs, size, gsd, ", ".join(it.bands), ", ".join(p.name for p in it.vector_paths) or "-"
        )
    console.print(table)


@catalog_app.command("validate")
def validate(
    catalog: CatalogOpt = None, allow_external: AllowExternalOpt = False, asset_root: AssetRootOpt = None
) -> None:
    """Check every item: assets exist, checksums match, rasters georeferenced and readable, ids
    are plain names, every link and asset stays inside the catalog folder, and every STAC file
    is valid against the shipped JSON schemas (offline)."""
    from georeason.catalog import default_catalog_dir, list_items, validate_catalog
    from georeason.progress import task

    target = catalog if catalog is not None else default_catalog_dir()
    policy = policy_of(allow_external, asset_root)
    with task("checking items: assets, checksums, schemas", total=None) as advance:
        problems = validate_catalog(target, policy=policy, advance=advance)
    if problems:
        for p in problems:
            typer.echo(f"georeason: problem: {' '.join(p.split())}", err=True)
        typer.echo(f"georeason: error: catalog {target} has {len(problems)} problem(s)", err=True)
        raise typer.Exit(code=2)
    try:
        n = len(list_items(target, policy))
    except GeoreasonError as exc:
        _fail(exc)
    typer.echo(f"catalog {target}: {n} item(s), all assets present and checksums match")
