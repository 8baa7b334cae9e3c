"""Fire pump controller supervision over Modbus (TCP and RTU), with test-run compliance.

Entry point `drivers.fire_pump:FirePumpDriver` (config key `[[fire_pump]]`).
Modules: `regmap` (register maps as data, decoding), `poller` (async Modbus
links), `panel` (events from polls), `compliance` (test runs), `driver`,
`cli` (`anfang pump-report`). Maps shipped in `maps/`.
"""

from drivers.fire_pump.driver import FirePumpConfig, FirePumpDriver, PanelConfig

__all__ = ["FirePumpConfig", "FirePumpDriver", "PanelConfig"]
