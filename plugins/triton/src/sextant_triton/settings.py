"""The ``triton`` deployer's own options (:class:`DeployOptions`, ``DeployRequest.options``).

The serving settings themselves (max batch size, dynamic batching, preferred sizes, queue delay,
instances) are derived from the package by the core (:mod:`sextant.serving`); what is Triton's is
the model version folder, the backend choice, the warmup requests and, for a text-generation
package's streaming model, the most sequences an instance decodes together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from sextant.api import SERVING_OPTIONS, DeployOption, ServingOptions, UsageError

if TYPE_CHECKING:
    from sextant.api import DeployRequest

BackendChoice = Literal["auto", "native", "python", "vllm"]

#: ``sextant deploy triton``'s options, in the order ``--help`` shows them
OPTIONS = (
    DeployOption("version", "int", default=1, help="The model version folder to write."),
    DeployOption(
        "backend",
        default="auto",
        help="native (refuse when Triton has none), python (sextant's runner), vllm (a text-generation package: "
        "Triton's vLLM-backend folder, for a GPU server; not loaded here), or auto.",
    ),
    *SERVING_OPTIONS,
    DeployOption("warmup", "bool", default=True, help="Warmup requests from the samples."),
    DeployOption(
        "max_sequences",
        "int",
        help="A text-generation package's streaming model: the most requests each instance decodes together "
        "(continuous batching, where its generator can; default 8).",
    ),
)


@dataclass(frozen=True)
class DeployOptions:
    """The deployer's own options; ``None``: derive from the package (:attr:`serving`)."""

    version: int = 1
    backend: BackendChoice = "auto"
    max_batch_size: int | None = None
    instances: int | None = None
    dynamic_batching: bool | None = None
    preferred_batch_sizes: tuple[int, ...] | None = None
    queue_delay_us: int | None = None
    warmup: bool = True
    #: a streaming model's ``sextant_max_sequences`` (:mod:`sextant_triton.stream_deploy`)
    max_sequences: int | None = None
    #: Let the deployed model unpickle the candidate's files (a source ``nn.Module``, Keras custom
    #: classes) when Triton's Python backend loads it: ``DeployRequest.trust_source``.
    trust_source: bool = False

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "native", "python", "vllm"):
            raise UsageError(
                f"--backend {self.backend}: choose native, python or auto (or vllm for a text-generation package)"
            )
        if self.version < 1:
            raise UsageError(f"--version {self.version}: Triton's model versions are positive integers")
        self.serving  # noqa: B018 - checks the serving overrides
        if self.max_sequences is not None:
            from sextant_triton.stream_scheduler import check_max_sequences

            check_max_sequences(self.max_sequences)

    @property
    def serving(self) -> ServingOptions:
        """The overrides of the settings :mod:`sextant.serving` derives."""
        return ServingOptions(
            **{f.name: getattr(self, f.name) for f in fields(ServingOptions)}  # type: ignore[arg-type]
        )

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> DeployOptions:
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise UsageError(
                f"the triton deployer has no option {', '.join(sorted(unknown))}",
                hint=f"Its options: {', '.join(sorted(known))}.",
            )
        values = {k: v for k, v in options.items() if v is not None}
        if "preferred_batch_sizes" in values:
            values["preferred_batch_sizes"] = tuple(int(b) for b in values["preferred_batch_sizes"])
        return cls(**values)

    @classmethod
    def from_request(cls, request: DeployRequest) -> DeployOptions:
        return cls.from_mapping({**request.options, **({"trust_source": True} if request.trust_source else {})})
