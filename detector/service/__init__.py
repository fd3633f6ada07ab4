"""The live detector service: frames in over MQTT, one engine per open wearer night,
checkpoints, nights written to the store; and the settings of the services (services.toml)."""
