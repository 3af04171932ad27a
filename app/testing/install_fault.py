"""Turns a copy of the app into one whose 001 revision is a fault-injected variant (tests only).

    /usr/bin/python3 testing/install_fault.py <fault (one of FAULTS)> <app copy>

The real revision moves beside the variants as testing/faulty_revisions/real_001.py, which the
variant imports, so the variants carry only their fault, never a copy of the migration.
"""
import shutil
import sys
from pathlib import Path

REVISION = "001_uuid_schema_migration.py"
FAULTS = (
    "fail_halfway", "drop_rows", "reparent", "drop_table", "hang",
    # Schema mistakes that keep every row (issue 10): upgrades, downgrades, and the real-world pair.
    "drop_not_null", "drop_check", "on_delete_rule", "drop_view", "drop_trigger",
    "downgrade_no_default", "downgrade_nullable", "real_world",
)


def install_fault(app_copy: Path, fault: str) -> None:
    if fault not in FAULTS:
        raise SystemExit(f"install_fault: unknown fault {fault!r}; use one of {', '.join(FAULTS)}")
    versions = app_copy / "migrations" / "versions"
    variants = app_copy / "testing" / "faulty_revisions"
    shutil.move(versions / REVISION, variants / "real_001.py")
    shutil.copy(variants / f"{fault}.py", versions / REVISION)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    install_fault(Path(sys.argv[2]), sys.argv[1])
