"""The wheel carries what the running program reads from disk, and the `ppacer` command."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_has_templates_static_files_licences_and_the_console_script(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("ppacer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "src" / "ppacer"
    for folder in ("api/static", "ui/static", "ui/templates"):
        on_disk = {
            f"ppacer/{p.relative_to(package).as_posix()}"
            for p in (package / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        assert on_disk and on_disk <= names, sorted(on_disk - names)
    assert "ppacer/api/static/swagger-ui.LICENSE" in names
    assert "ppacer/py.typed" in names and "ppacer/__main__.py" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "ppacer = ppacer.__main__:run" in text
