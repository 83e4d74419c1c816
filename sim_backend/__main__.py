"""``python -m sim_backend serve ...`` — the simulated bench process (same as ``snnbench sim serve``)."""
import sys

from sim_backend.lifeline import arm_from_argv

arm_from_argv(sys.argv[2:])  # before the heavy imports (decision 0014)

from sim_backend.server import serve  # noqa: E402

if len(sys.argv) < 2 or sys.argv[1] != "serve":
    print("usage: python -m sim_backend serve [options]", file=sys.stderr)
    sys.exit(2)
try:
    sys.exit(serve(sys.argv[2:]))
except OSError as exc:
    print(f"sim serve: error: {exc}", file=sys.stderr)
    sys.exit(1)
except Exception as exc:  # noqa: BLE001 - e.g. a die file in use or unreadable: one line, exit 2
    if getattr(exc, "exit_code", None) != 2:
        raise
    print(f"sim serve: error: {exc}", file=sys.stderr)
    sys.exit(2)
