"""Spark jobs: one module per job, ``extract -> pure transforms -> load``.

Each job runs alone as ``python -m spark_jobs.<job> --date YYYY-MM-DD`` with the same arguments the
nightly DAG passes, and exposes ``main(date, settings) -> dict`` returning small run facts
(rows written, rows quarantined, Delta versions) that travel through XCom into the run manifest.
"""
