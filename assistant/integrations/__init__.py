"""Edges to the smart home: MQTT (Home Assistant discovery), Home Assistant's API, Wyoming."""
