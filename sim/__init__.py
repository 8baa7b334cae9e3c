"""Simulated devices and scenarios: the hardware-free world `anfang sim` and the tests run against."""
