"""Maintenance mode kept in a file under the run dir, so it survives restarts and never
touches the schema being migrated."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


class MaintenanceFlag:
    def __init__(self, run_dir: Path):
        self.path = run_dir / "maintenance.json"

    def enabled(self) -> bool:
        # Read on every call: another worker or a restart may have changed it.
        return self.path.exists()

    def enable(self) -> bool:
        """Turn it on; True when this call changed the state."""
        if self.path.exists():
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"enabled": True, "since": time.time()}))
        os.replace(tmp, self.path)
        return True

    def disable(self) -> bool:
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False
