"""The ``run`` path (issue 11, runpath): a raster's checksum is hashed once per process
while the file is unchanged, and an edit is still caught."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest


def test_checksum_is_hashed_once_while_the_file_is_unchanged(tmp_path: Path, monkeypatch) -> None:
    import georeason.geo.raster.io as rio
    from georeason.errors import CatalogError
    from georeason.runstate import verify_raster_checksum

    f = tmp_path / "r.tif"
    f.write_bytes(b"x" * 1000)
    sha = hashlib.sha256(b"x" * 1000).hexdigest()  # independent of the code under test
    calls: list[str] = []
    real = rio.file_sha256
    monkeypatch.setattr(rio, "file_sha256", lambda p: calls.append(str(p)) or real(p))
    info = SimpleNamespace(id="r", sha256=sha, raster_path=f)
    verify_raster_checksum(info)
    verify_raster_checksum(info)
    assert len(calls) == 1
    # the same size, another content, times moved on: hashed again and refused
    st = os.stat(f)
    f.write_bytes(b"y" * 1000)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(CatalogError, match="changed since it was catalogued"):
        verify_raster_checksum(info)
    assert len(calls) == 2
    with pytest.raises(CatalogError):  # a failed check is never remembered as good
        verify_raster_checksum(info)
    assert len(calls) == 3
