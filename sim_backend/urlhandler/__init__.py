"""pyserial URL handlers provided by the simulator (``pesim://``)."""
