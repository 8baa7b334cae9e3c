"""anfang-gateway: the supervisor, config, durable event store and MQTT forwarder."""

__version__ = "0.1.0"
