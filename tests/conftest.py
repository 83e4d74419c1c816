import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sim_backend  # noqa: E402,F401  (registers pesim://)
