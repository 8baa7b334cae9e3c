"""Perimeter intrusion: active infrared beam pairs (主动红外对射) on GPIO contacts.

Entry point `drivers.ir_beam:IrBeamDriver` (config key `[[ir_beam]]`); see
docs/ir_beam.md. Modules: `config` (parsing), `debounce` and `schedule` (pure
timing logic), `engine` (the zone state machine), `pins` (gpiozero), `state`
(the arm-state file), `driver` (threads, events, commands).
"""

from drivers.ir_beam.config import IrBeamConfig, parse_config
from drivers.ir_beam.driver import IrBeamDriver

__all__ = ["IrBeamDriver", "IrBeamConfig", "parse_config"]
