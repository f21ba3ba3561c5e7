"""Untrusted catalogs are confined: links and assets stay inside the catalog folder.

Each case edits a real catalog (built with ``add_item``) the way a hostile or careless
author could, then checks ``list_items``/``get_item``, ``catalog list`` and ``catalog
validate``: a refusal naming the href (exit 2, one line, no traceback) or a reported
problem, and never a network connection.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path

import pytest
from test_catalog import make_tif
from typer.testing import CliRunner

from georeason.catalog import AssetPolicy, add_item, get_item, list_items, validate_catalog
from georeason.cli import app
from georeason.errors import CatalogError

runner = CliRunner()


@pytest.fixture
def cat(tmp_path: Path) -> Path:
    root = tmp_path / "cat"
    add_item(root, make_tif(tmp_path / "scene.tif"), item_id="scene")
    return root


def _item_json(cat: Path) -> Path:
    return cat / "scene" / "scene.json"


def _edit_item(cat: Path, fn) -> None:
    p = _item_json(cat)
    d = json.loads(p.read_text())
    fn(d)
    p.write_text(json.dumps(d))


def _cli(*args: str):
    res = runner.invoke(app, list(args))
    assert "Traceback" not in (res.output or ""), res.output
    return res


class _Listener:
    """A loopback TCP server that counts connections (a catalog must never open one)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = False
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            c.close()

    def close(self) -> None:
        self._stop = True
        self.t.join(2)
        self.sock.close()


def test_item_link_url_is_never_fetched(cat: Path):
    srv = _Listener()
    try:
        d = json.loads((cat / "catalog.json").read_text())
        d["links"].append({"rel": "item", "href": f"http://127.0.0.1:{srv.port}/evil.json"})
        (cat / "catalog.json").write_text(json.dumps(d))
        res = _cli("catalog", "list", "--catalog", str(cat))
        assert res.exit_code == 2
        assert f"http://127.0.0.1:{srv.port}/evil.json" in res.output and "URL" in res.output
        with pytest.raises(CatalogError, match="URL"):
            list_items(cat)
        problems = validate_catalog(cat)
        assert any("evil.json" in p for p in problems)
        res = _cli("catalog", "validate", "--catalog", str(cat), "--allow-external")
        assert res.exit_code == 2
    finally:
        srv.close()
    assert srv.hits == 0


def test_asset_url_is_refused_without_fetch(cat: Path):
    srv = _Listener()
    try:
        _edit_item(cat, lambda d: d["assets"]["image"].update(href=f"http://127.0.0.1:{srv.port}/x.tif"))
        for flags in ((), ("--allow-external",)):
            res = _cli("catalog", "list", "--catalog", str(cat), *flags)
            assert res.exit_code == 2 and "is a URL" in res.output
        res = _cli("ask", "How many lakes are there?", "--item", "scene", "--catalog", str(cat))
        assert res.exit_code == 2 and "is a URL" in res.output
    finally:
        srv.close()
    assert srv.hits == 0


def test_dotdot_asset_href_is_refused(cat: Path, tmp_path: Path):
    _edit_item(cat, lambda d: d["assets"]["image"].update(href="../../../../../../etc/passwd"))
    with pytest.raises(CatalogError, match=r"etc/passwd.*outside the catalog folder"):
        list_items(cat)
    res = _cli("catalog", "list", "--catalog", str(cat))
    assert res.exit_code == 2 and "../../../../../../etc/passwd" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert any("outside the catalog folder" in p for p in validate_catalog(cat))
    res = _cli("ask", "How many lakes are there?", "--item", "scene", "--catalog", str(cat))
    assert res.exit_code == 2 and "etc/passwd" in res.output


def test_absolute_asset_href_needs_opt_in(cat: Path, tmp_path: Path):
    outside = make_tif(tmp_path / "elsewhere.tif")
    _edit_item(cat, lambda d: d["assets"]["image"].update(href=str(outside)))
    with pytest.raises(CatalogError, match="absolute path"):
        list_items(cat)
    assert any("absolute" in p for p in validate_catalog(cat))
    assert _cli("catalog", "list", "--catalog", str(cat)).exit_code == 2
    # the user opts in: the file is read where it is
    (info,) = list_items(cat, AssetPolicy(allow_external=True))
    assert info.raster_path == outside.resolve()
    assert _cli("catalog", "list", "--catalog", str(cat), "--allow-external").exit_code == 0


def test_symlink_out_of_catalog_needs_asset_root(cat: Path, tmp_path: Path):
    elsewhere = tmp_path / "private"
    elsewhere.mkdir()
    secret = make_tif(elsewhere / "secret.tif")
    link = cat / "scene" / "link.tif"
    os.symlink(secret, link)
    _edit_item(cat, lambda d: d["assets"]["image"].update(href="./link.tif"))
    with pytest.raises(CatalogError, match="symlink"):
        get_item("scene", cat)
    assert any("outside the catalog folder" in p for p in validate_catalog(cat))
    res = _cli("catalog", "list", "--catalog", str(cat))
    assert res.exit_code == 2 and "link.tif" in res.output
    res = _cli("catalog", "list", "--catalog", str(cat), "--asset-root", str(elsewhere))
    assert res.exit_code == 0, res.output
    assert get_item("scene", cat, AssetPolicy(roots=(elsewhere,))).raster_path == secret.resolve()


def test_item_link_outside_catalog_is_refused(cat: Path, tmp_path: Path):
    other = tmp_path / "other"
    add_item(other, make_tif(tmp_path / "o.tif"), item_id="o")
    d = json.loads((cat / "catalog.json").read_text())
    d["links"].append({"rel": "item", "href": "../other/o/o.json"})
    (cat / "catalog.json").write_text(json.dumps(d))
    with pytest.raises(CatalogError, match="outside the catalog folder"):
        list_items(cat)
    assert any("o.json" in p and "outside" in p for p in validate_catalog(cat))


@pytest.mark.parametrize("bad_id", ["../../x", "/abs", "a/b", "..", ""])
def test_item_id_that_is_not_a_folder_name_is_refused(cat: Path, bad_id: str):
    _edit_item(cat, lambda d: d.update(id=bad_id))
    with pytest.raises(CatalogError, match="not a plain name"):
        list_items(cat)
    assert any("not a plain name" in p for p in validate_catalog(cat))
    res = _cli("catalog", "list", "--catalog", str(cat))
    assert res.exit_code == 2 and repr(bad_id) in res.output


def test_item_id_dotdot_cannot_write_outside_out(cat: Path, tmp_path: Path):
    _edit_item(cat, lambda d: d.update(id="../../x"))
    out = tmp_path / "deep" / "er" / "out"
    res = _cli("run", "--catalog", str(cat), "--out", str(out), "--questions", str(_questions(tmp_path)))
    assert res.exit_code == 2, res.output
    assert "../../x" in res.output
    assert not (tmp_path / "deep" / "x").exists() and not (tmp_path / "x").exists()
    assert not out.exists() or not any(out.iterdir())


def _questions(tmp_path: Path) -> Path:
    q = tmp_path / "q.txt"
    q.write_text("How many lakes are there?\n")
    return q


def test_shipped_catalog_is_clean():
    assert validate_catalog() == []


def test_item_links_to_urls_are_never_fetched(cat: Path):
    """root/parent/collection/self links of an item pointing at a server: no request is sent."""
    srv = _Listener()
    try:
        url = f"http://127.0.0.1:{srv.port}"

        def links(d):
            d["links"] = [
                {"rel": "root", "href": f"{url}/catalog.json"},
                {"rel": "parent", "href": f"{url}/catalog.json"},
                {"rel": "collection", "href": f"{url}/collection.json"},
                {"rel": "derived_from", "href": f"{url}/other.json"},
            ]
            d["stac_extensions"].append(f"{url}/schema.json")

        _edit_item(cat, links)
        for args in (("catalog", "list"), ("catalog", "validate")):
            res = _cli(*args, "--catalog", str(cat))
            assert res.exit_code in (0, 2), res.output
        try:
            list_items(cat)
        except CatalogError:
            pass
        validate_catalog(cat)
    finally:
        srv.close()
    assert srv.hits == 0
