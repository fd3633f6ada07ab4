"""The signal-processing engine: pure, streaming, no I/O.

Front end, channel stage, posture, sleep, PLM, events, the night summary and the detector
configuration. It imports nothing from ``detector.store``, ``detector.service``,
``detector.advice`` or any network or web library (tests/test_architecture.py checks this).
"""
