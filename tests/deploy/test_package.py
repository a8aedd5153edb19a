"""A plain (non-editable) install has everything the CLI needs at run time: the wheel built from the
repository carries every migration and the local Dagster instance config as package data.

Installing the wheel into a fresh venv (dependencies included) takes minutes here (3 min 10 s measured,
README "Tests"), too long for the suite; README gives the by-hand check."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["pyproject.toml", "README.md", "qtickets_assets", "clickhouse_migrations", "dagster.yaml"]


@pytest.mark.slow
def test_the_wheel_carries_the_migrations_and_the_instance_config(tmp_path):
    # Built from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(tmp_path)]
    subprocess.run(pip, check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("qtickets_assets-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        migrations = sorted(p.name for p in (ROOT / "clickhouse_migrations").glob("*.sql"))
        assert migrations and {f"qtickets_assets/clickhouse_migrations/{m}" for m in migrations} <= names
        for migration in migrations:  # the files themselves, not links
            packaged = archive.read(f"qtickets_assets/clickhouse_migrations/{migration}")
            assert packaged == (ROOT / "clickhouse_migrations" / migration).read_bytes()
        assert archive.read("qtickets_assets/dagster.yaml") == (ROOT / "dagster.yaml").read_bytes()
        assert not [n for n in names if n.startswith(("tests/", "bench/"))]
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "qtickets-assets = qtickets_assets.cli:main" in archive.read(entry_points).decode()
