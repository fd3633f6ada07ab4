"""The wire contract between sensors, collector, detector and tools (docs/mqtt-frames.md).

One owner per part: ``ids`` (pseudonymous wearer and sensor ids), ``topics`` (every MQTT topic,
built and parsed), ``frames`` (the binary sample frame) and ``status`` (the retained sensor
status). Nothing else in the project spells a topic or reads a frame header.
"""
