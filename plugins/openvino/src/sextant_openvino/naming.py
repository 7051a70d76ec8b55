"""The names sextant gives an OpenVINO model's inputs and outputs: the signature's.

An ONNX file keeps its tensor names through OpenVINO's ONNX frontend, and sextant's exporters name
ONNX outputs as the signature does. A model converted from a ``torch.export`` program names its
outputs after the operations that computed them (``linear_1:0``) and its inputs after ``forward``'s
parameters, which sextant calls ``input_0``... for a positionally called model: there, the names
follow the signature by position, as the torch plugin's runners do when the structure was lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def port_names(ports: Sequence[Any], wanted: Sequence[str]) -> list[str]:
    """The name of each port (an OpenVINO ``Output``) in sextant: the wanted name it carries when
    each port carries a different one; else the wanted names by position when there are as many;
    else the port's own name."""
    carried = [[name for name in wanted if name in port.get_names()] for port in ports]
    if all(len(names) == 1 for names in carried) and len({names[0] for names in carried}) == len(ports):
        return [names[0] for names in carried]
    if wanted and len(wanted) == len(ports):
        return list(wanted)
    return [port.get_any_name() for port in ports]


def rename(ports: Sequence[Any], wanted: Sequence[str]) -> None:
    """Give each port of a model being converted its sextant name (:func:`port_names`) as its only name."""
    for port, name in zip(ports, port_names(ports, wanted)):
        port.get_tensor().set_names({name})
