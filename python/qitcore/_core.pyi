# Type stubs of the Rust extension module qitcore._core (hand-written; checked by mypy.stubtest).
from typing import Literal, TypeVar, final

from typing_extensions import Buffer

_B = TypeVar("_B", bound=Buffer)

__all__ = [
    "Toeplitz",
    "__version__",
    "available_clmul_backends",
    "clmul_backend",
    "set_clmul_backend",
]

__version__: str

def clmul_backend() -> Literal["portable", "pclmul", "vpclmul"]: ...
def available_clmul_backends() -> list[str]: ...
def set_clmul_backend(name: str) -> None: ...

@final
class Toeplitz:
    def __new__(
        cls, n: int, m: int, seed: Buffer | None = None, bitorder: Literal["big", "little"] = "big"
    ) -> Toeplitz: ...
    @property
    def n(self) -> int: ...
    @property
    def m(self) -> int: ...
    @property
    def seed_bits(self) -> int: ...
    @property
    def bitorder(self) -> Literal["big", "little"]: ...
    def seed_bytes(self) -> bytes: ...
    def output_bytes(self, blocks: int) -> int: ...
    def hash(self, data: Buffer, nbits: int | None = None, out: _B | None = None) -> bytes | _B: ...
