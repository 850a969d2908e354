"""What a training run cost: its wall time on the device at a device-hour price, recorded in
the version's manifest (`training.cost`) as a retrain records its own (`training_cost`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from reckon.models.serving.costing import DEVICE_HOUR_USD

__all__ = ["training_cost"]


def training_cost(wall: float, cpu: float, device: str, device_hour_usd: float | None = None) -> dict[str, Any]:
    """Wall and CPU seconds, the device, its price per hour (`device_hour_usd`, else the
    device's default) and the cost: wall hours x price, a decimal string at 12 places."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    price = device_hour_usd if device_hour_usd is not None else DEVICE_HOUR_USD[kind]
    wall, cpu = round(wall, 6), round(cpu, 6)
    return {"wall_seconds": wall, "cpu_seconds": cpu, "device": kind, "device_hour_usd": price,
            "cost_usd": f"{Decimal(repr(wall)) / 3600 * Decimal(repr(price)):.12f}"}
