"""Install DuckDB's ``delta`` extension from the ``duckdb-extension-delta`` wheel, offline.

Feast's DuckDB offline store reads Delta tables through ibis, which calls DuckDB's ``delta_scan``
and, when the extension is missing, runs ``INSTALL delta`` against DuckDB's extension server. We
ship the extension binary as a pinned wheel instead, and this module copies it into DuckDB's
extension directory once (``make setup`` runs ``python -m reelrec.duckdb_delta``), so no nightly
run ever needs the network.

Idempotent and fast: when DuckDB already reports the extension as installed, nothing is copied.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

EXTENSION = "delta"
PACKAGE = "duckdb_extension_delta"


def extension_file() -> Path:
    """Path of the ``delta.duckdb_extension`` file shipped in the installed wheel.

    The wheel lays it out as ``duckdb_extension_delta/extensions/v<duckdb version>/delta.duckdb_extension``;
    the file matching the installed DuckDB version is preferred.

    Raises:
        FileNotFoundError: naming the package and the DuckDB version when no file is found.
    """
    import duckdb
    import duckdb_extension_delta

    root = Path(next(iter(duckdb_extension_delta.__path__)))
    wanted = root / "extensions" / f"v{duckdb.__version__}" / f"{EXTENSION}.duckdb_extension"
    if wanted.is_file():
        return wanted
    found = sorted(root.rglob(f"{EXTENSION}.duckdb_extension"))
    if not found:
        raise FileNotFoundError(
            f"package {PACKAGE} at {root} holds no {EXTENSION}.duckdb_extension for duckdb "
            f"{duckdb.__version__}; install duckdb-extension-delta=={duckdb.__version__}"
        )
    raise FileNotFoundError(
        f"package {PACKAGE} ships {[str(p.relative_to(root)) for p in found]} but duckdb is "
        f"{duckdb.__version__}; pin duckdb-extension-delta=={duckdb.__version__}"
    )


def _state(con: object) -> tuple[bool, bool, str]:
    row = con.execute(  # type: ignore[attr-defined]
        "SELECT installed, loaded, install_path FROM duckdb_extensions() WHERE extension_name = ?",
        [EXTENSION],
    ).fetchone()
    if row is None:
        return False, False, ""
    return bool(row[0]), bool(row[1]), str(row[2] or "")


def is_installed() -> bool:
    """Whether DuckDB's extension directory already holds ``delta`` (cheap: nothing is loaded)."""
    import duckdb

    con = duckdb.connect()
    try:
        return _state(con)[0]
    finally:
        con.close()


def ensure_installed(force: bool = False) -> dict[str, object]:
    """Install the ``delta`` extension from the wheel unless DuckDB already has it, then load it.

    Args:
        force: reinstall even when DuckDB reports the extension as installed.

    Returns:
        ``{"installed_now": bool, "install_path": str, "source": str | None, "duckdb": version}``.

    Raises:
        FileNotFoundError: when the wheel's extension file is missing.
        duckdb.Error: when DuckDB refuses the file or cannot load the extension.
    """
    import duckdb

    con = duckdb.connect()
    try:
        installed, _, _ = _state(con)
        source: Path | None = None
        if force or not installed:
            source = extension_file()
            # A path (not a name) makes DuckDB copy the local file: no network access.
            con.execute(f"{'FORCE ' if force else ''}INSTALL '{source}'")
        con.execute(f"LOAD {EXTENSION}")
        installed, loaded, install_path = _state(con)
        if not (installed and loaded):
            raise RuntimeError(
                f"duckdb {duckdb.__version__}: extension {EXTENSION} not usable after install "
                f"(installed={installed}, loaded={loaded}, path={install_path!r})"
            )
    finally:
        con.close()
    return {
        "installed_now": source is not None,
        "install_path": install_path,
        "source": str(source) if source else None,
        "duckdb": duckdb.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m reelrec.duckdb_delta [--force]``; prints what it did."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="reinstall even if already installed")
    args = parser.parse_args(argv)
    result = ensure_installed(force=args.force)
    verb = "installed" if result["installed_now"] else "already installed"
    print(f"duckdb {result['duckdb']}: extension {EXTENSION} {verb} at {result['install_path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
