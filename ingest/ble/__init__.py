"""The BLE side: the sensor's GATT profile, sensor clocks, the collector and its durable
outbox, and the replaying radio that stands in for an adapter in tests."""
