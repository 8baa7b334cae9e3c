"""Device drivers: one module (or package) per device family, turning device signals into events."""
