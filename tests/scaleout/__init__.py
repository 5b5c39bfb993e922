"""Scale-out tests: Redis, one runtime worker and two Daphne processes, driven by Chromium."""
